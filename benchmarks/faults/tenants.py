"""Scenario 6, tenants in one Exchange organisation: two tenants (``acme`` and ``sandbox``, a full sandbox copy of
the same Salesforce org) on the same simulator organisation and the same service account post the same event ids,
postbacks and meetings, at the same time: creates (each meeting with the same organizer in both tenants), updates
(meetings drop an attendee), and deletes of different subsets. Every ``sandbox`` meeting also invites an external
attendee; ``acme`` invites another one.

Pass: each tenant's items are exactly its own last accepted state (the other tenant's writes and deletes never
touched them); no message reaches anyone that tenant never invited, no cancellation reaches an attendee who is
still invited (the external ones included); a tenant asking for a meeting id only the other tenant has gets 404,
and for a shared id gets its own meeting.

    .venv/bin/python -m benchmarks.faults.tenants [--backend ews] [--events 8]
"""

from __future__ import annotations

import argparse
import random
import uuid
from typing import Any

from benchmarks.faults import workload as w
from benchmarks.faults.stack import EXTERNAL, harness, log, main_guard, verdict

NAME = "tenants"
OTHER_EXTERNAL = "visitor@elsewhere.example"


def chains_for(
    rng: random.Random, ids: list[str], kind: str, tenant: str, organizers: list[str], external: str, deleting: set[str]
) -> list[w.Chain]:
    pool = [w.mailbox(n) for n in range(30)]
    chains = []
    for event_id, organizer in zip(ids, organizers, strict=True):
        state = w.random_state(rng, pool, organizer=organizer)
        if kind == w.MEETING:
            state = w.State(**{**state.__dict__, "attendees": (*state.attendees, (external, False))})
        steps = [w.Step(w.CREATE, state)]
        later = w.changed(rng, state, pool, move_people=kind == w.POSTBACK)
        if kind == w.MEETING:  # one attendee fewer: that one (and only that one) gets a cancellation
            later = w.State(**{**later.__dict__, "attendees": (*state.attendees[1:],)})
        steps.append(w.Step(w.UPDATE, later))
        if event_id in deleting:
            steps.append(w.Step(w.DELETE, None))
        chains.append(w.Chain(tenant, kind, event_id, steps))
    return chains


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.faults.{NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="ews")
    parser.add_argument("--events", type=int, default=8, help="shared event ids of each kind")
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failures: list[str] = []
    with harness(NAME, args.backend, workers=2, tenants=("acme", "sandbox"), keep=args.keep) as h:
        ledger = w.Ledger()
        # Each write waits for its result (?wait=30), so every create, change and cancellation really reaches
        # Exchange: sent at once, a create and its delete would rightly converge to nothing being written.
        client = w.Client(h, ledger, wait=30)
        shared_meetings = [f"mtg-{uuid.uuid4().hex[:12]}" for _ in range(args.events)]
        shared_postbacks = [f"evt-{uuid.uuid4().hex[:12]}" for _ in range(args.events)]
        acme_only = [f"mtg-{uuid.uuid4().hex[:12]}" for _ in range(2)]
        organizers = [w.mailbox(n) for n in range(args.events)]  # the same organizer in both tenants
        half = args.events // 2
        chains = [
            *chains_for(
                rng, shared_meetings, w.MEETING, "acme", organizers, OTHER_EXTERNAL, set(shared_meetings[:half])
            ),
            *chains_for(rng, shared_meetings, w.MEETING, "sandbox", organizers, EXTERNAL, {shared_meetings[-1]}),
            *chains_for(rng, acme_only, w.MEETING, "acme", organizers[:2], OTHER_EXTERNAL, set()),
            *chains_for(rng, shared_postbacks, w.POSTBACK, "acme", organizers, "", set(shared_postbacks[:half])),
            *chains_for(rng, shared_postbacks, w.POSTBACK, "sandbox", organizers, "", {shared_postbacks[-1]}),
        ]
        rng.shuffle(chains)
        w.run_chains(client, chains, threads=12)
        log(f"{len(ledger.writes)} writes by two tenants with the same event ids: {ledger.statuses()}")
        w.resolve_unanswered(h, ledger)
        converged = w.wait_converged(h, ledger, timeout=180)
        left = w.wait_quiet(h, timeout=90)
        messages = h.sim.messages()
        findings = w.judge_postbacks(h, ledger)
        w.judge_meetings(h, ledger, findings, messages)
        store = w.check_store(h, ledger)
        w.report_findings(findings, store)

        # Reading meetings back: the other tenant's id is not there; a shared id is one's own.
        finals = w.final_states(ledger, w.MEETING)
        reads: dict[str, Any] = {"404 for the other tenant's meeting": 0, "own meeting for a shared id": 0}
        wrong_reads: list[str] = []
        for event_id, organizer in zip(acme_only, organizers[:2], strict=True):
            status = client.request(
                "GET", w.PATHS[w.MEETING], "sandbox", params={"id": event_id, "organizerEmail": organizer}
            ).status_code
            if status == 404:
                reads["404 for the other tenant's meeting"] += 1
            else:
                wrong_reads.append(f"sandbox read acme's meeting {event_id}: {status}")
        for event_id, organizer in zip(shared_meetings, organizers, strict=True):
            for tenant in ("acme", "sandbox"):
                final = finals[(tenant, event_id)][0]
                answer = client.request(
                    "GET", w.PATHS[w.MEETING], tenant, params={"id": event_id, "organizerEmail": organizer}
                )
                if final is None:
                    ok = answer.status_code == 404
                else:
                    ok = answer.status_code == 200 and answer.json().get("subject") == final.subject
                if ok and final is not None:
                    reads["own meeting for a shared id"] += 1
                if not ok:
                    wrong_reads.append(f"{tenant} read {event_id}: {answer.status_code} {answer.text[:120]}")
        w.show("wrong reads", wrong_reads)
        tags = {t.tag_id for t in h.tenants.values()}
        foreign = [m for m in messages if m["extendedProperties"].get(f"{w.TAG_SET}:DownsyncTenant") not in tags]
        external_cancels = {
            to: sum(1 for m in messages if m["to"] == to and m["kind"] == "cancel") for to in (EXTERNAL, OTHER_EXTERNAL)
        }
        figures = {
            "writes (acme / sandbox)": (
                f"{sum(1 for x in ledger.writes if x.tenant == 'acme')} / "
                f"{sum(1 for x in ledger.writes if x.tenant == 'sandbox')}"
            ),
            "answers": ledger.statuses(),
            "messages (request / update / cancel)": "/".join(
                str(sum(1 for m in messages if m["kind"] == k)) for k in ("request", "update", "cancel")
            ),
            "cancellations to the external attendees (sandbox's / acme's)": (
                f"{external_cancels[EXTERNAL]} / {external_cancels[OTHER_EXTERNAL]}"
            ),
            "misdirected messages / stray cancellations": (
                f"{len(findings.misdirected)} / {len(findings.stray_cancels)}"
            ),
            "lost / duplicated / wrong / stray": (
                f"{len(findings.lost)} / {len(findings.duplicated)} / {len(findings.wrong)} / {len(findings.stray)}"
            ),
            "reads": reads,
            "converged after (s)": None if converged is None else round(converged, 1),
        }
        expected_external = 1  # sandbox cancels one of its meetings; nothing else may reach its external attendee
        if converged is None:
            failures.append("did not converge")
        if not findings.clean:
            failures.append(f"calendars or messages: {findings.summary()}")
        if wrong_reads:
            failures.append(f"{len(wrong_reads)} reads answered wrong")
        if foreign:
            failures.append(f"{len(foreign)} messages from items of no tenant")
        if external_cancels[EXTERNAL] != expected_external:
            failures.append(f"sandbox's external attendee got {external_cancels[EXTERNAL]} cancellations, not 1")
        if store.wrongly_final or store.pending or left:
            failures.append(f"{len(store.wrongly_final)} wrongly final, {store.pending} pending, {left} due")
        dead = h.alive_check()
        if dead:
            failures.append(f"processes died: {dead}")
        h.keep = h.keep or bool(failures)
    return verdict(NAME, figures, failures)


if __name__ == "__main__":
    main_guard(main)

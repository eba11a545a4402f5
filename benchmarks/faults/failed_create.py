"""Scenario 7, a failed create and attendee order, for several meetings at once:

1. a meeting create that fails for good: its organizer is not a mailbox (``ErrorMailRecipientNotFound``);
2. the corrected create, same id, a real organizer: accepted (not ``409``) and the meeting is created, every
   attendee invited once;
3. the same create again with the attendees in another order: the same answer as the corrected create (status,
   body, job), not ``409``, and nothing sent;
4. a PATCH that only reorders the attendees: answered ``NoError`` and nothing sent (``/_sim/messages`` unchanged,
   the organizer's item unchanged).

    .venv/bin/python -m benchmarks.faults.failed_create [--backend ews] [--meetings 5]
"""

from __future__ import annotations

import argparse
import random
from typing import Any

from benchmarks.faults import workload as w
from benchmarks.faults.stack import EXTERNAL, harness, main_guard, verdict

NAME = "failed_create"
NOBODY = "nobody@nowhere.example"


def reordered(state: w.State) -> w.State:
    return w.State(**{**state.__dict__, "attendees": tuple(reversed(state.attendees))})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.faults.{NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="ews")
    parser.add_argument("--meetings", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failures: list[str] = []
    figures: dict[str, Any] = {}
    with harness(NAME, args.backend, workers=1, keep=args.keep) as h:
        ledger = w.Ledger()
        client = w.Client(h, ledger, wait=30)
        pool = [w.mailbox(n) for n in range(12)]
        steps: dict[str, list[str]] = {"failed": [], "corrected": [], "repeated": [], "patched": []}
        for _ in range(args.meetings):
            event_id = f"mtg-{rng.randrange(16**12):012x}"
            good = w.random_state(rng, pool)
            good = w.State(**{**good.__dict__, "attendees": (*good.attendees, (EXTERNAL, False))})
            bad = w.State(**{**good.__dict__, "organizer": NOBODY})
            failed = client.send("acme", w.MEETING, w.CREATE, event_id, bad, None)
            answer = failed.answer if isinstance(failed.answer, dict) else {}
            if failed.status != 200 or answer.get("errorCode") != "ErrorMailRecipientNotFound":
                steps["failed"].append(f"{event_id}: {failed.status} {failed.answer}")
            corrected = client.send("acme", w.MEETING, w.CREATE, event_id, good, None)
            answer = corrected.answer if isinstance(corrected.answer, dict) else {}
            if corrected.status != 200 or answer.get("errorCode") != "NoError":
                steps["corrected"].append(f"{event_id}: {corrected.status} {corrected.answer}")
            sent = len(h.sim.messages())
            repeated = client.send("acme", w.MEETING, w.CREATE, event_id, reordered(good), None)
            if (repeated.status, repeated.answer, repeated.job_id) != (
                corrected.status,
                corrected.answer,
                corrected.job_id,
            ):
                steps["repeated"].append(
                    f"{event_id}: {repeated.status} {repeated.answer} job {repeated.job_id}, first {corrected.job_id}"
                )
            before = [i for i in h.sim.calendar(good.organizer.lower()) if i["isMeeting"]]
            patched = client.send("acme", w.MEETING, w.UPDATE, event_id, reordered(good), good)
            answer = patched.answer if isinstance(patched.answer, dict) else {}
            after = [i for i in h.sim.calendar(good.organizer.lower()) if i["isMeeting"]]
            changed_items = [i["subject"] for i in after if i not in before]
            if patched.status != 200 or answer.get("errorCode") != "NoError" or changed_items:
                steps["patched"].append(f"{event_id}: {patched.status} {patched.answer}, changed {changed_items}")
            if len(h.sim.messages()) != sent:
                steps["patched"].append(f"{event_id}: {len(h.sim.messages()) - sent} messages after the reorderings")
        w.resolve_unanswered(h, ledger)
        left = w.wait_quiet(h, timeout=60)
        messages = h.sim.messages()
        findings = w.judge_meetings(h, ledger, messages=messages)
        store = w.check_store(
            h, ledger, expected_codes=lambda _, mailbox: {"ErrorMailRecipientNotFound"} if mailbox == NOBODY else set()
        )
        w.report_findings(findings, store)
        for name, problems in steps.items():
            w.show(f"step '{name}' answered wrong", problems)
        figures = {
            "meetings": args.meetings,
            "failed creates answered ErrorMailRecipientNotFound": args.meetings - len(steps["failed"]),
            "corrected creates accepted and made": args.meetings - len(steps["corrected"]),
            "reordered repeats answered as the first (same job)": args.meetings - len(steps["repeated"]),
            "reordering PATCHes that sent nothing": args.meetings - len(steps["patched"]),
            "messages in all (request / update / cancel)": "/".join(
                str(sum(1 for m in messages if m["kind"] == k)) for k in ("request", "update", "cancel")
            ),
            "requests per attendee (requests: attendees)": findings.requests_per_attendee,
        }
        for name, problems in steps.items():
            if problems:
                failures.append(f"{name}: {len(problems)} of {args.meetings} wrong")
        if not findings.clean:
            failures.append(f"calendars or messages: {findings.summary()}")
        if store.accepted_not_stored or store.refused_but_stored:
            failures.append("an answer disagrees with the store")
        if store.wrongly_final or store.pending or left:
            failures.append(f"{len(store.wrongly_final)} wrongly final, {store.pending} pending, {left} due")
        dead = h.alive_check()
        if dead:
            failures.append(f"processes died: {dead}")
        h.keep = h.keep or bool(failures)
    return verdict(NAME, figures, failures)


if __name__ == "__main__":
    main_guard(main)

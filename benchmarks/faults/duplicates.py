"""Scenario 3, duplicate meetings and invitations, in two parts.

``stall``: meetings and postbacks are written while one worker runs; every CreateItem takes 4 s in Exchange
(``latencyMs``), and once they are in flight that worker is stopped with SIGSTOP, for twice its lease (6 s here).
The creates land meanwhile; a second worker takes over when the lease runs out, finds the drafts and sends the
meetings; then the first gets SIGCONT and finds its answers waiting (and its claims gone).

``slow``: no signals; Exchange takes 7 s to complete each CreateItem while the service gives up on a call after
3 s (``DOWNSYNC_EXCHANGE_TIMEOUT_SECONDS=3``): every create ends without an answer and lands more than two
timeouts later.

Pass (each part): one meeting per event in the organizer's calendar, equal to what was posted; every attendee
exactly one ``request`` in ``/_sim/messages`` and no cancellation at all; every appointment exactly once per
mailbox; no result final with an error code.

    .venv/bin/python -m benchmarks.faults.duplicates [--backend ews] [--part stall|slow|both]
"""

from __future__ import annotations

import argparse
import random
import signal
import time
from typing import Any

from benchmarks.faults import workload as w
from benchmarks.faults.stack import EXTERNAL, Harness, harness, log, main_guard, verdict

NAME = "duplicates"
STALL_LEASE = 6  # seconds: the stall lasts two leases, so a short lease keeps the run short; nothing else changes


def send_all(h: Harness, rng: random.Random, meetings: int, postbacks: int) -> w.Ledger:
    ledger = w.Ledger()
    client = w.Client(h, ledger, wait=0)
    pool = [w.mailbox(n) for n in range(20)]
    chains = w.meeting_chains(rng, "acme", meetings, pool, external=EXTERNAL)
    chains += w.postback_chains(rng, "acme", postbacks, pool, writes=1)
    w.run_chains(client, chains, threads=8)
    return ledger


def judge_part(h: Harness, ledger: w.Ledger, label: str, figures: dict[str, Any], failures: list[str]) -> None:
    w.resolve_unanswered(h, ledger)
    converged = w.wait_converged(h, ledger, timeout=180)
    left = w.wait_quiet(h, timeout=90)
    messages = h.sim.messages()
    findings = w.judge_postbacks(h, ledger)
    w.judge_meetings(h, ledger, findings, messages)
    store = w.check_store(h, ledger)
    w.report_findings(findings, store)
    cancels = [m for m in messages if m["kind"] == "cancel"]
    organizers = {x.state.organizer.lower() for x in ledger.writes if x.kind == w.MEETING and x.state}
    per_organizer = [
        len([i for i in w.tagged(h.sim.calendar(o), h.tenants["acme"].tag_id, w.MEETING, x.event_id)])
        for x in ledger.writes
        if x.kind == w.MEETING and x.state
        for o in [x.state.organizer.lower()]
    ]
    figures[f"{label}: meetings in their organizer's calendar"] = f"{per_organizer} ({len(organizers)} organizers)"
    figures[f"{label}: requests per attendee (requests: attendees)"] = findings.requests_per_attendee
    figures[f"{label}: cancellations sent"] = len(cancels)
    figures[f"{label}: lost / duplicated / wrong / stray"] = (
        f"{len(findings.lost)} / {len(findings.duplicated)} / {len(findings.wrong)} / {len(findings.stray)}"
    )
    figures[f"{label}: settled after (s)"] = None if converged is None else round(converged, 1)
    if converged is None:
        failures.append(f"{label}: did not converge")
    if not findings.clean:
        failures.append(f"{label}: {findings.summary()}")
    if set(findings.requests_per_attendee) - {1}:
        failures.append(f"{label}: some attendee did not get exactly one request: {findings.requests_per_attendee}")
    if cancels:
        failures.append(f"{label}: {len(cancels)} cancellations sent")
    if store.wrongly_final or store.pending or left:
        failures.append(f"{label}: {len(store.wrongly_final)} wrongly final, {store.pending} pending, {left} due")
    dead = h.alive_check()
    if dead:
        failures.append(f"{label}: processes died: {dead}")


def stall(args: argparse.Namespace, figures: dict[str, Any], failures: list[str]) -> None:
    rng = random.Random(args.seed)
    settings = {"DOWNSYNC_LEASE_SECONDS": str(STALL_LEASE)}
    with harness(f"{NAME}-stall", args.backend, workers=1, settings=settings, keep=args.keep) as h:
        [first] = h.stack.workers
        h.sim.fault(operation=h.ops.create, latencyMs=args.latency_ms)
        ledger = send_all(h, rng, args.meetings, args.postbacks)
        # Every create is on its way once each meeting's organizer has been searched: wait for that, then stall.
        organizers = {x.state.organizer.lower() for x in ledger.writes if x.kind == w.MEETING and x.state}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            searched = {e["mailbox"] for e in h.sim.log() if e["operation"] == h.ops.find}
            if organizers <= searched:
                break
            time.sleep(0.05)
        time.sleep(0.5)
        stopped_at = time.time()
        h.signal(first, signal.SIGSTOP)
        log(f"worker stopped (SIGSTOP) with its creates in flight; a second worker takes over for {2 * STALL_LEASE} s")
        second = h.start_worker()
        time.sleep(max(0.0, 2 * STALL_LEASE - (time.time() - stopped_at)))
        h.signal(first, signal.SIGCONT)
        resumed_at = time.time()
        log("first worker resumed (SIGCONT)")
        judge_part(h, ledger, "stall", figures, failures)
        creates = [e for e in h.sim.log() if e["operation"] == h.ops.create]
        in_flight = [e for e in creates if e["time"] < stopped_at < e["time"] + e["durationMs"] / 1000]
        taken_over = [e for e in creates if stopped_at < e["time"] < resumed_at]
        sent = [e for e in h.sim.log() if e["operation"] == h.ops.update and stopped_at < e["time"] < resumed_at]
        figures["stall: creates in flight when the worker stopped"] = len(in_flight)
        figures["stall: worker stopped for (s)"] = round(resumed_at - stopped_at, 1)
        figures["stall: creates sent by the second worker during the stall"] = len(taken_over)
        figures["stall: meetings sent by the second worker during the stall"] = len(sent)
        if not in_flight:
            failures.append("stall: no create was in flight when the worker stopped (the scenario did not happen)")
        if not sent:
            failures.append("stall: the second worker sent no meeting during the stall (no takeover happened)")
        assert second.alive()
        h.keep = h.keep or bool(failures)


def slow(args: argparse.Namespace, figures: dict[str, Any], failures: list[str]) -> None:
    rng = random.Random(args.seed + 1)
    settings = {"DOWNSYNC_EXCHANGE_TIMEOUT_SECONDS": "3"}
    with harness(f"{NAME}-slow", args.backend, workers=2, settings=settings, keep=args.keep) as h:
        h.sim.fault(operation=h.ops.create, latencyMs=7000)
        ledger = send_all(h, rng, args.meetings, args.postbacks)
        log(f"every {h.ops.create} takes 7 s; the service gives up on a call after 3 s")
        judge_part(h, ledger, "slow", figures, failures)
        creates = [e for e in h.sim.log() if e["operation"] == h.ops.create]
        figures["slow: creates completed by Exchange (each > 2 timeouts)"] = (
            f"{len(creates)}, {min(e['durationMs'] for e in creates) / 1000:.1f} s at least" if creates else 0
        )
        h.keep = h.keep or bool(failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.faults.{NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="ews")
    parser.add_argument("--part", choices=("stall", "slow", "both"), default="both")
    parser.add_argument("--meetings", type=int, default=8)
    parser.add_argument("--postbacks", type=int, default=6)
    parser.add_argument(
        "--latency-ms", type=int, default=4000, help="create latency in the stall part (shorter than the 6 s lease)"
    )
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the logs folders")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {}
    failures: list[str] = []
    if args.part in ("stall", "both"):
        stall(args, figures, failures)
    if args.part in ("slow", "both"):
        slow(args, figures, failures)
    return verdict(NAME, figures, failures)


if __name__ == "__main__":
    main_guard(main)

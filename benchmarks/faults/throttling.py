"""Scenario 4, throttling: half of all Exchange requests (probability 0.5, seeded) are answered ErrorServerBusy with
``BackOffMilliseconds`` 500 while 200 postbacks arrive (creates and updates; mailboxes shared between events, as a
real organizer's are).

Pass: every result ends NoError and every mailbox holds the right item; and, from the simulator's request log, no
request to a mailbox started sooner than the back-off after an ErrorServerBusy answer for that mailbox had ended
(requests already under way when that answer went out do not count). The minimum gap and the count of early
requests are reported; early must be 0.

    .venv/bin/python -m benchmarks.faults.throttling [--backend ews] [--postbacks 200] [--back-off-ms 500]
"""

from __future__ import annotations

import argparse
import bisect
import random
import time
from collections import defaultdict
from typing import Any

from benchmarks.faults import workload as w
from benchmarks.faults.stack import harness, log, main_guard, verdict

NAME = "throttling"
BUSY = "ErrorServerBusy"


def gaps(
    entries: list[dict[str, Any]], back_off: float, busy_codes: tuple[str, ...] = (BUSY,)
) -> tuple[float | None, list[str], int]:
    """(the smallest gap between a busy answer and the next request to its mailbox, the early requests, the busy
    answers) from the simulator's log."""
    by_mailbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in entries:
        if entry["mailbox"]:
            by_mailbox[entry["mailbox"]].append(entry)
    smallest: float | None = None
    early: list[str] = []
    busy_count = 0
    for mailbox, requests in by_mailbox.items():
        requests.sort(key=lambda e: e["time"])
        starts = [e["time"] for e in requests]
        busy_ends = sorted(e["time"] + e["durationMs"] / 1000 for e in requests if e["responseCode"] in busy_codes)
        busy_count += len(busy_ends)
        for end in busy_ends:
            following = bisect.bisect_left(starts, end)
            if following < len(starts):
                gap = starts[following] - end
                smallest = gap if smallest is None else min(smallest, gap)
        for request in requests:
            # The latest busy answer that had ended before this request started.
            index = bisect.bisect_right(busy_ends, request["time"]) - 1
            if index >= 0 and request["time"] - busy_ends[index] < back_off:
                gap_ms = (request["time"] - busy_ends[index]) * 1000
                early.append(f"{request['operation']} to {mailbox} {gap_ms:.0f} ms after a throttled answer")
    return smallest, early, busy_count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.faults.{NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="ews")
    parser.add_argument("--postbacks", type=int, default=200, help="writes in all (events x 2: a create, an update)")
    parser.add_argument("--back-off-ms", type=int, default=500)
    parser.add_argument("--probability", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failures: list[str] = []
    with harness(NAME, args.backend, workers=args.workers, keep=args.keep) as h:
        effect, back_off = h.ops.throttle(args.back_off_ms)
        h.sim.fault(probability=args.probability, seed=7, **effect)
        ledger = w.Ledger()
        client = w.Client(h, ledger, wait=0)
        pool = [w.mailbox(n) for n in range(24)]
        chains = w.postback_chains(rng, "acme", args.postbacks // 2, pool, writes=2)
        started = time.monotonic()
        w.run_chains(client, chains, threads=8, rate=20)
        log(f"{len(ledger.writes)} writes in {time.monotonic() - started:.0f} s: {ledger.statuses()}")
        converged = w.wait_converged(h, ledger, timeout=300, since=started)
        left = w.wait_quiet(h, timeout=60)
        findings = w.judge(h, ledger)
        store = w.check_store(h, ledger)
        w.report_findings(findings, store)
        entries = h.sim.log()
        smallest, early, busy = gaps(entries, back_off, h.ops.busy_codes)
        w.show("early requests", early)
        attempts = h.sql(
            "SELECT max(r.attempts), avg(r.attempts) FROM jobresult r JOIN job j ON j.id = r.job_id "
            "WHERE j.correlation_id LIKE :run",
            run=f"{client.run_id}-%",
        )
        figures = {
            "postbacks": len(ledger.writes),
            "Exchange requests / answered throttled": f"{len(entries)} / {busy}",
            "result codes": store.codes,
            "tries per result (max / mean)": f"{attempts[0][0]} / {float(attempts[0][1] or 0):.1f}",
            "all converged after (s)": None if converged is None else round(converged, 1),
            "smallest gap after a throttled answer, same mailbox (ms)": None
            if smallest is None
            else round(smallest * 1000),
            "requests sooner than the back-off": len(early),
            "lost / duplicated / wrong / stray": (
                f"{len(findings.lost)} / {len(findings.duplicated)} / {len(findings.wrong)} / {len(findings.stray)}"
            ),
        }
        if len(entries) >= 20_000:
            failures.append("the simulator's log overflowed: the gaps were not all seen")
        if converged is None:
            failures.append("did not converge")
        if set(store.codes) - {"NoError"}:
            failures.append(f"not every result is NoError: {store.codes}")
        if not findings.clean:
            failures.append(f"calendars: {findings.summary()}")
        if early:
            failures.append(f"{len(early)} requests came sooner than the back-off")
        if left:
            failures.append(f"{left} placements still due")
        dead = h.alive_check()
        if dead:
            failures.append(f"processes died: {dead}")
        h.keep = h.keep or bool(failures)
    return verdict(NAME, figures, failures)


if __name__ == "__main__":
    main_guard(main)

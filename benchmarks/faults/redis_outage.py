"""Scenario 8, a 30 s Redis outage: the service's Redis (a private server, never the machine's) is stopped for 30 s
while postbacks arrive, then started again on the same port; two workers.

Pass: every write is answered 200/202 within 3 s (``?wait=1``), accepted writes are all stored, and everything
converges after Redis returns (the time is reported), with nothing lost, duplicated or wrong and no result
wrongly final.

    .venv/bin/python -m benchmarks.faults.redis_outage [--backend ews] [--seconds 30] [--postbacks 300]
"""

from __future__ import annotations

import argparse
import random
import threading
import time

from benchmarks.faults import workload as w
from benchmarks.faults.stack import harness, log, main_guard, verdict

NAME = "redis_outage"
ANSWER_WITHIN = 3.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.faults.{NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="ews")
    parser.add_argument("--postbacks", type=int, default=300, help="writes in all (events x 3: a create, 2 updates)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long Redis stays stopped")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failures: list[str] = []
    with harness(NAME, args.backend, workers=2, keep=args.keep) as h:
        ledger = w.Ledger()
        client = w.Client(h, ledger, wait=1)
        pool = [w.mailbox(n) for n in range(24)]
        chains = w.postback_chains(rng, "acme", args.postbacks // 3, pool, writes=3)
        # 10 s of writes before the outage, the outage, 10 s after.
        rate = args.postbacks / (args.seconds + 20)
        sender = threading.Thread(target=w.run_chains, args=(client, chains), kwargs={"threads": 8, "rate": rate})
        sender.start()
        time.sleep(10)
        log(f"stopping Redis for {args.seconds} s")
        stopped_at = time.monotonic()
        h.redis.stop()
        time.sleep(args.seconds)
        h.restart_redis()
        back = time.monotonic()
        log(f"Redis is back after {back - stopped_at:.1f} s")
        sender.join()
        last_answer = max(x.sent_at + x.seconds for x in ledger.writes)
        log(f"{len(ledger.writes)} writes: {ledger.statuses()}")
        w.resolve_unanswered(h, ledger)
        converged = w.wait_converged(h, ledger, timeout=240, since=back)
        left = w.wait_quiet(h, timeout=90)
        findings = w.judge(h, ledger)
        store = w.check_store(h, ledger)
        w.report_findings(findings, store)
        during = [x for x in ledger.writes if stopped_at <= x.sent_at <= back]
        slow = [x for x in ledger.writes if x.seconds > ANSWER_WITHIN]
        figures = {
            "writes": len(ledger.writes),
            "answers": ledger.statuses(),
            "written while Redis was down": len(during),
            "slowest answer (s), while down / overall": (
                f"{max((x.seconds for x in during), default=0):.2f} / {max(x.seconds for x in ledger.writes):.2f}"
            ),
            "converged after Redis returned (s)": None if converged is None else round(converged, 1),
            "converged after the last answer (s)": None
            if converged is None
            else round(max(0.0, converged - (last_answer - back)), 1),
            "lost / duplicated / wrong / stray": (
                f"{len(findings.lost)} / {len(findings.duplicated)} / {len(findings.wrong)} / {len(findings.stray)}"
            ),
            "wrongly final": len(store.wrongly_final),
            "worker restarts (Celery gave up on the broker)": sum(
                p.log.read_text(errors="replace").count("restarting in") for p in h.stack.workers
            ),
        }
        other = {k: v for k, v in ledger.statuses().items() if k not in ("200", "202")}
        if other:
            failures.append(f"answers other than 200/202: {other}")
        if slow:
            failures.append(f"{len(slow)} writes answered after more than {ANSWER_WITHIN:.0f} s")
        if converged is None:
            failures.append("did not converge within 240 s of Redis's return")
        if not findings.clean:
            failures.append(f"calendars: {findings.summary()}")
        if store.wrongly_final or store.accepted_not_stored:
            failures.append(f"{len(store.wrongly_final)} wrongly final, {len(store.accepted_not_stored)} not stored")
        if store.pending or left:
            failures.append(f"{store.pending} results still pending, {left} placements still due")
        dead = h.alive_check()
        if dead:
            failures.append(f"processes died: {dead}")
        h.keep = h.keep or bool(failures)
    return verdict(NAME, figures, failures)


if __name__ == "__main__":
    main_guard(main)

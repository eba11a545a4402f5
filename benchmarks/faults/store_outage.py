"""Scenario 2, stored but answered as failed: the service's PostgreSQL (a private instance, never the machine's)
is stopped for 20 s while postbacks arrive, then started again on the same port. The service reaches it through
a TCP relay that, for the last 0.5 s before the stop, holds back the server's answers to COMMIT and then drops
them: those commits are stored, but their callers never hear so (as when the server dies between its commit and
its answer, which a bare stop makes rare).

Pass: no write that was committed is answered 503 (the store is searched for the job of every 503'd write, by
its correlation id), every write answered 2xx is stored and converges, nothing else changes (no lost,
duplicated, wrong or stray item, no result wrongly final). ``--mode immediate`` stops PostgreSQL as a crash
does (commits whose answer never left the server), ``fast`` as an administrator does.

    .venv/bin/python -m benchmarks.faults.store_outage [--backend ews] [--seconds 20] [--mode immediate|fast]
"""

from __future__ import annotations

import argparse
import random
import threading
import time

from benchmarks.faults import workload as w
from benchmarks.faults.stack import harness, log, main_guard, verdict

NAME = "store_outage"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.faults.{NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="ews")
    parser.add_argument("--postbacks", type=int, default=600, help="writes in all (events x 3: a create, 2 updates)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long PostgreSQL stays stopped")
    parser.add_argument("--mode", choices=("immediate", "fast"), default="immediate", help="pg_ctl stop -m MODE")
    parser.add_argument(
        "--hold-answers",
        type=float,
        default=0.5,
        help="seconds before the stop during which the answers to COMMIT are held back, then lost (0: none)",
    )
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failures: list[str] = []
    with harness(NAME, args.backend, workers=2, private_postgres=True, keep=args.keep) as h:
        assert h.private_pg is not None
        ledger = w.Ledger()
        client = w.Client(h, ledger, wait=0)
        pool = [w.mailbox(n) for n in range(24)]
        chains = w.postback_chains(rng, "acme", args.postbacks // 3, pool, writes=3)
        # 10 s of writes before the stop, the outage, then the rest (503s are sent again after 1 s, 5 times).
        rate = args.postbacks / (args.seconds + 20)
        sender = threading.Thread(
            target=w.run_chains,
            args=(client, chains),
            kwargs={"threads": 32, "rate": rate, "retries_503": 40, "pause_503": 1.0},
        )
        sender.start()
        time.sleep(10)
        assert h.proxy is not None
        log(f"stopping PostgreSQL (-m {args.mode}) for {args.seconds} s, answers to COMMIT before it held back")
        stopped_at = time.monotonic()
        if args.hold_answers:
            h.proxy.hold()  # what the server does from now on happens, but nobody hears of it
            time.sleep(args.hold_answers)
        h.private_pg.stop(args.mode)
        h.proxy.cut()
        h.proxy.release()
        held = h.proxy.held
        time.sleep(max(0.0, args.seconds - (time.monotonic() - stopped_at)))
        h.private_pg.start()
        restarted = time.monotonic()
        log(f"PostgreSQL is back after {restarted - stopped_at:.1f} s")
        sender.join()
        last_answer = max(x.sent_at + x.seconds for x in ledger.writes)
        log(f"{len(ledger.writes)} writes: {ledger.statuses()}")
        w.resolve_unanswered(h, ledger)
        converged = w.wait_converged(h, ledger, timeout=240, since=restarted)
        left = w.wait_quiet(h, timeout=90)
        findings = w.judge(h, ledger)
        store = w.check_store(h, ledger)
        w.report_findings(findings, store)
        answers = ledger.statuses()
        during = [x for x in ledger.writes if stopped_at <= x.sent_at + x.seconds and x.sent_at <= restarted]
        figures = {
            "writes sent (with resends)": len(ledger.writes),
            "answers": answers,
            "answered while the store was down": w.Ledger(writes=during).statuses(),
            "COMMIT answers lost (API and workers)": held,
            "slowest answer (s)": round(max(x.seconds for x in ledger.writes), 1),
            "answered 503 yet stored": len(store.refused_but_stored),
            "answered 2xx, not stored": len(store.accepted_not_stored),
            "no answer: stored / not stored": f"{store.unanswered_stored} / {store.unanswered_not_stored}",
            "converged after PostgreSQL returned (s)": None if converged is None else round(converged, 1),
            "converged after the last answer (s)": None
            if converged is None
            else round(max(0.0, converged - (last_answer - restarted)), 1),
            "lost / duplicated / wrong / stray": (
                f"{len(findings.lost)} / {len(findings.duplicated)} / {len(findings.wrong)} / {len(findings.stray)}"
            ),
            "wrongly final": len(store.wrongly_final),
        }
        if store.refused_but_stored:
            failures.append(f"{len(store.refused_but_stored)} writes answered 503 were stored")
        if store.accepted_not_stored:
            failures.append(f"{len(store.accepted_not_stored)} writes answered 2xx are not stored")
        if converged is None:
            failures.append("did not converge within 240 s of the restart")
        if not findings.clean:
            failures.append(f"calendars: {findings.summary()}")
        if store.wrongly_final:
            failures.append(f"{len(store.wrongly_final)} results wrongly final")
        if store.pending or left:
            failures.append(f"{store.pending} results still pending, {left} placements still due")
        other = {k: v for k, v in answers.items() if k not in ("200", "202", "503")}
        if other:
            failures.append(f"answers other than 2xx/503: {other}")
        dead = h.alive_check()
        if dead:
            failures.append(f"processes died: {dead}")
        h.keep = h.keep or bool(failures)
    return verdict(NAME, figures, failures)


if __name__ == "__main__":
    main_guard(main)

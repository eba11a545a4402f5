"""Scenario 1, store connection loss: every PostgreSQL session of the service is killed (``pg_terminate_backend``
for the scenario's database) every 0.5 s for 20 s while 300 postbacks arrive (creates and updates of events
with several attendees), on two workers.

Pass: nothing lost, duplicated or wrong in the calendars; no result final with an error code; no write answered
503 was stored and every write answered 2xx was; everything converges once the kills stop (the time it took is
reported). A write answered 503 is sent again, as Salesforce would.

    .venv/bin/python -m benchmarks.faults.store_kills [--backend ews] [--postbacks 300] [--seconds 20]
"""

from __future__ import annotations

import argparse
import random
import threading
import time

import psycopg

from benchmarks.faults import workload as w
from benchmarks.faults.stack import harness, log, main_guard, verdict
from tests.support.stack import POSTGRES_ADMIN_URL

NAME = "store_kills"


def kill_sessions(database: str, seconds: float, interval: float) -> tuple[int, int]:
    """Terminate every session of ``database`` every ``interval`` s for ``seconds``; returns (rounds, sessions)."""
    rounds = killed = 0
    deadline = time.monotonic() + seconds
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        while time.monotonic() < deadline:
            rows = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchall()
            rounds += 1
            killed += sum(1 for (ok,) in rows if ok)
            time.sleep(interval)
    return rounds, killed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.faults.{NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="ews")
    parser.add_argument("--postbacks", type=int, default=300, help="writes in all (events x 3: a create, 2 updates)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the kills go on")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between two rounds of kills")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failures: list[str] = []
    figures: dict[str, object] = {}
    with harness(NAME, args.backend, workers=2, keep=args.keep) as h:
        ledger = w.Ledger()
        client = w.Client(h, ledger, wait=0)
        pool = [w.mailbox(n) for n in range(24)]
        chains = w.postback_chains(rng, "acme", args.postbacks // 3, pool, writes=3)
        # The writes span the kills: 5 s before, the kills, 5 s after.
        rate = args.postbacks / (args.seconds + 10)
        sender = threading.Thread(
            target=w.run_chains, args=(client, chains), kwargs={"threads": 8, "rate": rate, "retries_503": 30}
        )
        started = time.monotonic()
        sender.start()
        time.sleep(5)
        log(f"killing every session of {h.database_name} every {args.interval} s for {args.seconds} s")
        rounds, killed = kill_sessions(h.database_name, args.seconds, args.interval)
        kills_ended = time.monotonic()
        log(f"kills over: {killed} sessions in {rounds} rounds")
        sender.join()
        log(f"{len(ledger.writes)} writes sent in {time.monotonic() - started:.0f} s: {ledger.statuses()}")
        w.resolve_unanswered(h, ledger)
        converged = w.wait_converged(h, ledger, timeout=240, since=kills_ended)
        left = w.wait_quiet(h, timeout=90)
        findings = w.judge(h, ledger)
        store = w.check_store(h, ledger)
        w.report_findings(findings, store)
        dead = h.alive_check()
        answers = ledger.statuses()
        figures = {
            "postbacks accepted": sum(1 for x in ledger.writes if x.accepted),
            "answers": answers,
            "sessions killed": f"{killed} in {rounds} rounds",
            "converged after the kills stopped (s)": None if converged is None else round(converged, 1),
            "lost / duplicated / wrong / stray": (
                f"{len(findings.lost)} / {len(findings.duplicated)} / {len(findings.wrong)} / {len(findings.stray)}"
            ),
            "wrongly final": len(store.wrongly_final),
            "answered 503 yet stored": len(store.refused_but_stored),
            "answered 2xx, not stored": len(store.accepted_not_stored),
        }
        if converged is None:
            failures.append("did not converge within 240 s of the kills")
        if not findings.clean:
            failures.append(f"calendars: {findings.summary()}")
        if store.refused_but_stored or store.accepted_not_stored:
            failures.append("an answer disagrees with the store")
        if store.wrongly_final:
            failures.append(f"{len(store.wrongly_final)} results wrongly final")
        if store.pending or left:
            failures.append(f"{store.pending} results still pending, {left} placements still due")
        other = {k: v for k, v in answers.items() if k not in ("200", "202", "503")}
        if other:
            failures.append(f"answers other than 2xx/503: {other}")
        if dead:
            failures.append(f"processes died: {dead}")
        h.keep = h.keep or bool(failures)
    return verdict(NAME, figures, failures)


if __name__ == "__main__":
    main_guard(main)

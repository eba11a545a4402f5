"""Scenario 5, killed workers: while 1000 postbacks arrive (creates, updates, some deletes) on two workers, one
worker is killed with SIGKILL (its whole process group, as a crashed host) ten times, alternating, and started
again at once. Lease, settle time and redelivery are the service's defaults (15 s, 30 s, 30 s): they are what
bounds the recovery.

Pass: nothing lost, duplicated or wrong in the calendars, no result wrongly final, and the work of each killed
worker finishes within 60 s of its kill: every placement unfinished at the kill (claimed by it, reserved by it,
or anyone's) has reached the version it was heading for within 60 s. The time the last kill's work took to
drain is reported.

    .venv/bin/python -m benchmarks.faults.killed_workers [--backend ews] [--postbacks 1000] [--kills 10]
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from typing import Any

from benchmarks.faults import workload as w
from benchmarks.faults.stack import Harness, harness, log, main_guard, verdict

NAME = "killed_workers"
LIMIT = 60.0


class KillWatch:
    """For each kill: the placements unfinished at that moment, and when the last of them got where it was going;
    and among them the killed worker's own claims: leases held at the kill that nobody renewed in the next 7 s (a
    live worker renews every lease each third of its length, 5 s)."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.kills: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="kill-watch", daemon=True)
        self.thread.start()

    def unfinished(self) -> dict[int, int]:
        rows = self.h.sql("SELECT id, target_version FROM placement WHERE done_version < target_version")
        return {pid: target for pid, target in rows}

    def leases(self) -> dict[int, tuple[str, Any]]:
        rows = self.h.sql(
            "SELECT id, lease_token, lease_expires_at FROM placement WHERE lease_expires_at > now() "
            "AND lease_token IS NOT NULL"
        )
        return {pid: (token, expires) for pid, token, expires in rows}

    def killed(self, at: float) -> None:
        waiting = self.unfinished()
        self.kills.append(
            {
                "at": at,
                "waiting": waiting,
                "count": len(waiting),
                "drained": None,
                "leased": self.leases(),
                "orphans": None,  # the killed worker's claims, known 7 s after the kill
                "orphan_count": None,
                "orphans_drained": None,
            }
        )

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            open_kills = [k for k in self.kills if k["drained"] is None]
            if not open_kills:
                continue
            try:
                done = dict(self.h.sql("SELECT id, done_version FROM placement"))
            except Exception:  # the store is the machine's; a failed read is tried again
                continue
            now = time.monotonic()
            for kill in open_kills:
                kill["waiting"] = {p: t for p, t in kill["waiting"].items() if done.get(p, 0) < t}
                if kill["orphans"] is None and now - kill["at"] >= 7:
                    current = {
                        pid: (t, e)
                        for pid, t, e in self.h.sql("SELECT id, lease_token, lease_expires_at FROM placement")
                    }
                    targets = dict(self.h.sql("SELECT id, target_version FROM placement"))
                    kill["orphans"] = {p: targets[p] for p, lease in kill["leased"].items() if current.get(p) == lease}
                    kill["orphan_count"] = len(kill["orphans"])
                if kill["orphans"] is not None and kill["orphans_drained"] is None:
                    kill["orphans"] = {p: t for p, t in kill["orphans"].items() if done.get(p, 0) < t}
                    if not kill["orphans"]:
                        kill["orphans_drained"] = now - kill["at"]
                if not kill["waiting"] and kill["orphans_drained"] is not None:
                    kill["drained"] = now - kill["at"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.faults.{NAME}", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="ews")
    parser.add_argument("--postbacks", type=int, default=1000, help="writes in all (events x 4)")
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--rate", type=float, default=5.0, help="postbacks a second (below what 2 cores can take)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failures: list[str] = []
    with harness(NAME, args.backend, workers=2, keep=args.keep) as h:
        ledger = w.Ledger()
        client = w.Client(h, ledger, wait=0)
        pool = [w.mailbox(n) for n in range(40)]
        chains = w.postback_chains(rng, "acme", args.postbacks // 4, pool, writes=4, delete_share=0.3, size=2)
        sending = threading.Event()
        sender = threading.Thread(
            target=lambda: (w.run_chains(client, chains, threads=12, rate=args.rate), sending.set()), daemon=True
        )
        started = time.monotonic()
        sender.start()
        watch = KillWatch(h)
        duration = args.postbacks / args.rate
        interval = duration / (args.kills + 1)
        for n in range(args.kills):
            time.sleep(max(0.0, started + interval * (n + 1) - time.monotonic()))
            victim = h.stack.workers[n % len(h.stack.workers)]
            h.kill_worker(victim)
            killed_at = time.monotonic()
            watch.killed(killed_at)
            log(f"kill {n + 1}: SIGKILL to a worker; {watch.kills[-1]['count']} placements unfinished; restarting it")
            h.start_worker()
        last_kill = watch.kills[-1]["at"] if watch.kills else started
        sender.join()
        log(f"{len(ledger.writes)} writes in {time.monotonic() - started:.0f} s: {ledger.statuses()}")
        w.resolve_unanswered(h, ledger)
        converged = w.wait_converged(h, ledger, timeout=300, since=last_kill)
        deadline = time.monotonic() + 30
        while any(k["drained"] is None for k in watch.kills) and time.monotonic() < deadline:
            time.sleep(0.5)
        watch.stop.set()
        left = w.wait_quiet(h, timeout=90)
        findings = w.judge(h, ledger)
        store = w.check_store(h, ledger)
        w.report_findings(findings, store)
        drains = [k["drained"] for k in watch.kills]
        worst = None if None in drains else max(drains, default=0.0)
        figures = {
            "postbacks accepted": sum(1 for x in ledger.writes if x.accepted),
            "answers": ledger.statuses(),
            "kills": len(watch.kills),
            "placements unfinished at each kill": [k["count"] for k in watch.kills],
            "of them claimed by the killed worker": [k["orphan_count"] for k in watch.kills],
            "its claims finished after (s), per kill": [
                None if k["orphans_drained"] is None else round(k["orphans_drained"], 1) for k in watch.kills
            ],
            "all unfinished at the kill finished after (s), per kill": [
                None if d is None else round(d, 1) for d in drains
            ],
            "slowest (s)": None if worst is None else round(worst, 1),
            "drain after the last kill (s)": None if not drains or drains[-1] is None else round(drains[-1], 1),
            "everything converged after the last kill (s)": None if converged is None else round(converged, 1),
            "lost / duplicated / wrong / stray": (
                f"{len(findings.lost)} / {len(findings.duplicated)} / {len(findings.wrong)} / {len(findings.stray)}"
            ),
            "wrongly final": len(store.wrongly_final),
        }
        if worst is None or worst > LIMIT:
            failures.append(f"a killed worker's work took longer than {LIMIT:.0f} s: {drains}")
        if converged is None:
            failures.append("did not converge")
        if not findings.clean:
            failures.append(f"calendars: {findings.summary()}")
        if store.wrongly_final or store.refused_but_stored or store.accepted_not_stored:
            failures.append(
                f"store: {len(store.wrongly_final)} wrongly final, {len(store.refused_but_stored)} refused yet stored,"
                f" {len(store.accepted_not_stored)} accepted, not stored"
            )
        if store.pending or left:
            failures.append(f"{store.pending} results still pending, {left} placements still due")
        other = {k: v for k, v in ledger.statuses().items() if k not in ("200", "202")}
        if other:
            failures.append(f"answers other than 2xx: {other}")
        dead = h.alive_check()
        if dead:
            failures.append(f"processes died: {dead}")
        h.keep = h.keep or bool(failures)
    return verdict(NAME, figures, failures)


if __name__ == "__main__":
    main_guard(main)

"""Memory of the real processes under a steady load: the worker (its supervisor and its Celery process), the
scheduler and the API, at start and after N minutes of postbacks (and some availability calls) through the API
against the simulator.

    .venv/bin/python -m benchmarks.memory [--minutes 10] [--rate 5] [--backend ews|graph|both] [--store postgres|sqlite]

Every process runs as in production (``downsync api``, ``downsync worker --no-dispatch --concurrency=16``, ``downsync
scheduler``, each with its metrics served), on a fresh database of the machine's PostgreSQL (dropped afterwards;
SQLite with ``--store sqlite`` or where PostgreSQL does not answer) and a private Redis server, so nothing else on
the machine is touched. RSS is what the kernel says the process holds (``VmRSS``); PSS shares the pages common to
several processes between them (``smaps_rollup``), which is the fairer sum for a process tree. Kubernetes' memory
limit counts the container's working set, close to the tree's RSS. Prints a table (and ``--json FILE``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from downsync.embedded import free_port, start_redis

BIN = Path(sys.executable).parent
DOMAIN = "bench.test"
POSTGRES_ADMIN_URL = os.environ.get("DOWNSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MAILBOXES = [f"user{i:03d}@{DOMAIN}" for i in range(200)]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- what a process holds ----------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.extend(int(p) for p in text)
    return found


def tree(pid: int) -> list[int]:
    pids = [pid]
    for child in children(pid):
        pids.extend(tree(child))
    return pids


ARENA = 64 << 20  # glibc's per-thread malloc arenas: 64 MiB reservations, aligned on their size
THREAD_STACK = 8 << 20  # a thread's stack (the default 8 MiB; Python's threads keep it)


def breakdown(pid: int, top: int = 12) -> list[tuple[str, float]]:
    """Where a process's RSS is (MB): each shared library or file it maps, its main heap, and its anonymous memory
    told apart by shape: threads' malloc arenas (64 MiB aligned), thread stacks (8 MiB), and the rest (Python's
    object arenas and large allocations)."""
    sizes: dict[str, float] = {}
    name = "?"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if not fields[0].endswith(":") or "-" in fields[0]:  # a mapping's header: address range, perms, ..., path
            name = fields[5] if len(fields) > 5 else "[anonymous]"
            if name == "[anonymous]":
                start, end = (int(a, 16) for a in fields[0].split("-"))
                if start % ARENA == 0:
                    name = "[anonymous: malloc arenas of threads]"
                elif end - start in (THREAD_STACK, THREAD_STACK + 4096):
                    name = "[anonymous: thread stacks]"
                else:
                    name = "[anonymous: Python objects, large allocations]"
            name = name if name.startswith("[") else "/".join(name.split("/")[-3:])
        elif fields[0] == "Rss:":
            sizes[name] = sizes.get(name, 0.0) + int(fields[1]) / 1024
    return sorted(sizes.items(), key=lambda item: -item[1])[:top]


@dataclass
class Sample:
    rss: float
    pss: float


@dataclass
class Watched:
    """One figure of the report: a process (or a process tree) sampled over the run."""

    name: str
    pids: Callable[[], list[int]]
    samples: list[Sample] = field(default_factory=list)

    def sample(self) -> Sample | None:
        try:
            pids = self.pids()
            taken = Sample(sum(rss_mb(p) for p in pids), sum(pss_mb(p) for p in pids))
        except (OSError, ValueError):  # a process that just ended: skip this sample
            return None
        self.samples.append(taken)
        return taken


# --- the processes -------------------------------------------------------------------------------------------


@dataclass
class Spawned:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)


class Run:
    def __init__(self, directory: Path, env: dict[str, str], stack: ExitStack) -> None:
        self.directory = directory
        self.env = env
        self.stack = stack

    def cli(self, *args: str) -> str:
        done = subprocess.run([str(BIN / "downsync"), *args], env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"downsync {' '.join(args)} failed: {done.stderr}")
        return done.stdout.strip()

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Spawned:
        path = self.directory / f"{name}.log"
        with path.open("wb") as out:
            popen = subprocess.Popen(
                [str(BIN / "downsync"), *args],
                env=env or self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped with everything it started
            )
        spawned = Spawned(name, popen, path)
        self.stack.callback(spawned.stop)
        return spawned

    @staticmethod
    def wait_for(check: Any, process: Spawned, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except (requests.RequestException, OSError):
                pass
            if process.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what}:\n{process.tail()}")
            time.sleep(0.2)


@contextmanager
def store(kind: str, directory: Path) -> Iterator[str]:
    if kind == "postgres":
        import psycopg

        name = f"downsync_memory_{uuid.uuid4().hex[:8]}"
        try:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
        except psycopg.Error as exc:
            log(f"PostgreSQL does not answer ({exc}); using SQLite")
        else:
            base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
            try:
                yield f"{base}/{name}"
            finally:
                with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
    yield f"sqlite:///{directory / 'downsync.db'}"


# --- the load ------------------------------------------------------------------------------------------------


class Load:
    """Postbacks at a steady rate (creates, updates, deletes of a pool of events), one availability call of 20
    attendees over 7 days every 5 s, spread over the tenants."""

    def __init__(self, api: str, tokens: list[str], rate: float) -> None:
        self.api = api
        self.tokens = tokens
        self.rate = rate
        self.random = random.Random(7)
        self.sent = 0
        self.answers: dict[int, int] = {}
        self.errors = 0
        self.live: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.http = requests.Session()
        self.http.trust_env = False

    def _body(self) -> tuple[str, dict[str, Any]]:
        with self.lock:
            if self.live and self.random.random() < 0.3:
                event_id = self.random.choice(sorted(self.live))
                if self.random.random() < 0.3:
                    old = self.live.pop(event_id)
                    return "DELETE", {"id": event_id, "organizerEmail": old["organizerEmail"]}
                old = self.live[event_id]
                new = {**old, "subject": f"moved {self.sent}"}
                self.live[event_id] = new
                return "PUT", {"original": old, "new": new}
            event_id = uuid.uuid4().hex[:12]
            start = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(
                days=self.random.randrange(300), hours=self.random.randrange(8, 17)
            )
            people = self.random.sample(MAILBOXES, self.random.randrange(2, 5))
            body = {
                "id": event_id,
                "organizerEmail": people[0],
                "subject": f"Appointment {event_id}",
                "body": "x" * self.random.randrange(50, 2000),
                "location": "Room 1",
                "startTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "endTime": (start + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "attendees": [{"email": p, "isRequired": "true"} for p in people[1:]],
            }
            self.live[event_id] = body
            return "POST", body

    def _send(self, token: str) -> None:
        method, body = self._body()
        self._call(method, "/api/salesforce/scheduler/postback", token, json=body, params={"wait": 2})

    def _availability(self, token: str) -> None:
        people = self.random.sample(MAILBOXES, 20)
        self._call(
            "POST",
            "/api/salesforce/scheduler/availability",
            token,
            json=[{"email": p} for p in people],
            params={"from": "2031-03-02T00:00:00Z", "to": "2031-03-09T00:00:00Z"},
        )

    def _call(self, method: str, path: str, token: str, **kwargs: Any) -> None:
        try:
            answer = self.http.request(
                method, f"{self.api}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=60, **kwargs
            )
            with self.lock:
                self.sent += 1
                self.answers[answer.status_code] = self.answers.get(answer.status_code, 0) + 1
        except requests.RequestException:
            with self.lock:
                self.errors += 1

    def run(self, seconds: float, on_tick: Any) -> None:
        started = time.monotonic()
        next_availability = started
        with ThreadPoolExecutor(max_workers=16) as pool:
            tick = 0
            while (elapsed := time.monotonic() - started) < seconds:
                token = self.tokens[tick % len(self.tokens)]
                pool.submit(self._send, token)
                if time.monotonic() >= next_availability:
                    pool.submit(self._availability, token)
                    next_availability += 5
                tick += 1
                on_tick(elapsed)
                time.sleep(max(0.0, started + tick / self.rate - time.monotonic()))


# --- the run -------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=5.0, help="postbacks a second")
    parser.add_argument("--backend", choices=["ews", "graph", "both"], default="both")
    parser.add_argument("--store", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--concurrency", type=int, default=16, help="the worker's threads")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--breakdown", action="store_true", help="at the end, where each process's RSS is")
    options = parser.parse_args()
    # SIGTERM ends the run through the ExitStack below, so no process, database or Redis of it is left behind.
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))

    directory = Path(tempfile.mkdtemp(prefix="downsync-memory-"))
    with ExitStack() as stack:
        redis_server = start_redis(directory / "redis")
        stack.callback(redis_server.stop)
        database_url = stack.enter_context(store(options.store, directory))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOWNSYNC_")}
        env.update(
            DOWNSYNC_ENVIRONMENT="test",
            DOWNSYNC_STATE_DIR=str(directory / "state"),
            DOWNSYNC_DATABASE_URL=database_url,
            DOWNSYNC_REDIS_URL=redis_server.url,
            DOWNSYNC_SECRET_KEY="memory-benchmark-key",
            # The load is far above one Salesforce org's: the service's per-tenant limits must not shape it.
            DOWNSYNC_RATE_LIMIT_WRITES="10000/second",
            DOWNSYNC_RATE_LIMIT_AVAILABILITY="10000/second",
        )
        run = Run(directory, env, stack)
        run.cli("db", "upgrade")
        tenants = []
        if options.backend in ("ews", "both"):
            port = free_port()
            sim = run.spawn("ews-sim", ["ews-sim", "--port", str(port), "--domain", DOMAIN])
            base = f"http://127.0.0.1:{port}"
            run.wait_for(lambda: requests.get(f"{base}/_sim/limits", timeout=1).ok, sim, "the simulator did not start")
            ews = [
                "--ews-url",
                f"{base}/EWS/Exchange.asmx",
                "--ews-username",
                f"svc@{DOMAIN}",
                "--ews-password",
                "demo",
            ]
            run.cli("tenant", "create", "bench-ews", *ews)
            tenants.append("bench-ews")
        if options.backend in ("graph", "both"):
            port, tls = free_port(), directory / "tls"
            sim = run.spawn(
                "graph-sim", ["ews-sim", "--port", str(port), "--domain", DOMAIN, "--tls", "--tls-dir", str(tls)]
            )
            base = f"https://127.0.0.1:{port}"
            ca = tls / "ca.pem"
            run.wait_for(
                lambda: requests.get(f"{base}/_sim/limits", timeout=1, verify=str(ca)).ok,
                sim,
                "the TLS simulator did not start",
            )
            graph = ["--backend", "graph", "--azure-tenant", DOMAIN, "--client-id", "demo", "--client-secret", "demo"]
            graph += ["--authority", base, "--graph-url", f"{base}/v1.0", "--ca-bundle", str(ca)]
            run.cli("tenant", "create", "bench-graph", *graph)
            tenants.append("bench-graph")
        tokens = [run.cli("token", "create", "--tenant", t, "--scopes", "availability,sync") for t in tenants]

        api_port = free_port()
        api = run.spawn("api", ["api", "--host", "127.0.0.1", "--port", str(api_port)])
        api_url = f"http://127.0.0.1:{api_port}"
        run.wait_for(lambda: requests.get(f"{api_url}/healthz", timeout=1).ok, api, "the API did not start")
        worker_env = env | {"DOWNSYNC_WORKER_METRICS_PORT": str(free_port())}
        # As deploy/kubernetes/base/worker.yaml runs it: tasks only (the scheduler below dispatches), no mingle or
        # gossip.
        worker_args = ["worker", "--no-dispatch", f"--concurrency={options.concurrency}"]
        worker = run.spawn("worker", [*worker_args, "--without-mingle", "--without-gossip"], env=worker_env)
        run.wait_for(lambda: "ready." in worker.log.read_text(errors="replace"), worker, "the worker did not start")
        scheduler_env = env | {"DOWNSYNC_WORKER_METRICS_PORT": str(free_port())}
        scheduler = run.spawn("scheduler", ["scheduler"], env=scheduler_env)
        run.wait_for(
            lambda: "dispatching due work" in scheduler.log.read_text(errors="replace"), scheduler, "no scheduler"
        )

        def celery() -> list[int]:
            return children(worker.popen.pid)[:1]

        watched = [
            Watched("worker: Celery process", celery),
            Watched("worker: supervisor", lambda: [worker.popen.pid]),
            Watched("worker: whole tree", lambda: tree(worker.popen.pid)),
            Watched("scheduler", lambda: [scheduler.popen.pid]),
            Watched("api", lambda: tree(api.popen.pid)),
        ]
        time.sleep(5)  # imports done, threads started, the first scrape-free second passed
        for item in watched:
            item.sample()
        log("at start: " + ", ".join(f"{w.name} {w.samples[-1].rss:.0f} MB" for w in watched if w.samples))

        load = Load(api_url, tokens, options.rate)
        last = [0.0]

        def on_tick(elapsed: float) -> None:
            if elapsed - last[0] >= 10:
                last[0] = elapsed
                for item in watched:
                    item.sample()
                for process in (api, worker, scheduler):
                    if process.popen.poll() is not None:
                        raise RuntimeError(f"{process.name} ended:\n{process.tail()}")
                log(
                    f"{elapsed / 60:4.1f} min: sent {load.sent} ({load.answers}), "
                    + ", ".join(f"{w.name} {w.samples[-1].rss:.0f}" for w in watched if w.samples)
                )

        load.run(options.minutes * 60, on_tick)
        for item in watched:
            item.sample()

        kind = database_url.split(":", 1)[0]
        print(f"\n{options.minutes:g} minutes, {load.sent} calls ({load.answers}, {load.errors} without answer),")
        print(f"backend {options.backend}, store {kind}, worker --concurrency={options.concurrency}\n")
        print("| process | RSS at start (MB) | RSS at end (MB) | peak RSS (MB) | PSS at end (MB) |")
        print("| --- | ---: | ---: | ---: | ---: |")
        figures = {}
        for item in watched:
            start, end = item.samples[0], item.samples[-1]
            peak = max(s.rss for s in item.samples)
            print(f"| {item.name} | {start.rss:.0f} | {end.rss:.0f} | {peak:.0f} | {end.pss:.0f} |")
            figures[item.name] = {"start_rss": start.rss, "end_rss": end.rss, "peak_rss": peak, "end_pss": end.pss}
        if options.json:
            options.json.write_text(json.dumps({"minutes": options.minutes, "calls": load.sent, "figures": figures}))
        if options.breakdown:
            for item in watched:
                pids = item.pids()
                if len(pids) == 1:
                    print(f"\n{item.name}: " + ", ".join(f"{n} {mb:.1f}" for n, mb in breakdown(pids[0])))


if __name__ == "__main__":
    main()

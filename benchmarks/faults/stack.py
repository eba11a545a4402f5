"""The real processes of a fault scenario: the simulator, a store, a Redis, the API and workers.

Every process runs as in production, each in its own process group so a scenario can SIGKILL, SIGSTOP or
SIGCONT it: ``downsync ews-sim`` (non-strict, so it is never the bottleneck), ``downsync api``,
``downsync worker --concurrency=16``. The store is a fresh database on the machine's PostgreSQL, or a private
PostgreSQL instance (``initdb`` as the ``postgres`` user on a free port) when the scenario stops it; Redis is
always a private server on a free port, so stopping it touches nobody else. The pieces of
``tests/support/stack.py`` (``database``, ``make_env``, ``Stack``'s process handling) are reused.

Tenants are created by ``add_tenant``, the one place that knows each backend's settings: ``ews`` now;
``graph`` (the simulator's HTTPS listener, Entra and Graph front doors) once that backend exists.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests
from sqlalchemy import Engine, create_engine, text

from downsync.embedded import EmbeddedRedis, free_port, start_redis
from tests.support.stack import BIN, Process, Stack, database, make_env

DOMAIN = "bench.test"
SERVICE_ACCOUNT = f"svc@{DOMAIN}"  # --domain gives it the password "demo" and every mailbox of the domain
SERVICE_PASSWORD = "demo"
GRAPH_CLIENT_ID = "demo"  # --domain registers this Entra app of tenant DOMAIN, reaching every mailbox
GRAPH_CLIENT_SECRET = "demo"
EXTERNAL = "guest@partner.example"  # outside the organisation: invited by e-mail only
TAG_SET = "3a5b0f6e-2c4d-4e8f-9a1b-7d6c5e4f3a2b"
BACKENDS = ("ews", "graph")


@dataclass(frozen=True)
class BackendOps:
    """What a scenario needs to know of a backend's requests: the simulator's names for the create and the search
    before it, how Exchange throttles through that door, and how the simulator's log names a throttled answer."""

    create: str
    find: str
    update: str  # how a meeting draft is sent (a fenced update)
    busy_codes: tuple[str, ...]

    def throttle(self, back_off_ms: int) -> tuple[dict[str, Any], float]:
        """The fault rule's effect for throttling with this back-off, and the back-off the client is told."""
        if self.create == "CreateItem":
            return {"responseCode": "ErrorServerBusy", "backOffMilliseconds": back_off_ms}, back_off_ms / 1000
        seconds = max(1, -(-back_off_ms // 1000))  # Retry-After is whole seconds
        return {"httpStatus": 429, "retryAfterSeconds": seconds}, float(seconds)


OPS = {
    "ews": BackendOps(create="CreateItem", find="FindItem", update="UpdateItem", busy_codes=("ErrorServerBusy",)),
    # Graph's own mailbox concurrency limit answers 429 ApplicationThrottled with Retry-After: 1 as well.
    "graph": BackendOps(
        create="graph.createEvent",
        find="graph.listEvents",
        update="graph.updateEvent",
        busy_codes=("TooManyRequests", "ApplicationThrottled"),
    ),
}

# Where a scenario says nothing else: the service's defaults, except quicker retries (Exchange's own back-off
# still bounds them from below) so a run is not spent sleeping.
BASE_SETTINGS = {
    "DOWNSYNC_ENVIRONMENT": "test",
    "DOWNSYNC_RETRY_BASE_SECONDS": "0.5",
    "DOWNSYNC_RETRY_MAX_SECONDS": "5",
    "DOWNSYNC_EXCHANGE_TIMEOUT_SECONDS": "30",
    "DOWNSYNC_LEASE_SECONDS": "15",
    "DOWNSYNC_SETTLE_SECONDS": "30",
    "DOWNSYNC_DISPATCH_INTERVAL_SECONDS": "1",
    "DOWNSYNC_REDELIVER_SECONDS": "30",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the simulator -------------------------------------------------------------------------------------------


class Sim:
    """The simulator's control API (``/_sim/``) over HTTP(S)."""

    def __init__(self, base: str, ca_file: Path | None = None) -> None:
        self.base = base
        self.ca_file = ca_file
        self.http = requests.Session()
        self.http.trust_env = False
        if ca_file is not None:
            self.http.verify = str(ca_file)

    @property
    def ews_url(self) -> str:
        return f"{self.base}/EWS/Exchange.asmx"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.base}/_sim{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def answers(self) -> bool:
        try:
            self._call("GET", "/limits")
            return True
        except (requests.RequestException, ValueError):
            return False

    def calendar(self, email: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/mailboxes/{email}/calendar")

    def messages(self) -> list[dict[str, Any]]:
        return self._call("GET", "/messages")

    def log(self, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", "/log", params={"since": since})

    def fault(self, **rule: Any) -> dict[str, Any]:
        return self._call("POST", "/faults", json=rule)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def limits(self, **limits: int) -> dict[str, int]:
        if limits:
            self._call("POST", "/limits", json=limits)
        return self._call("GET", "/limits")


# --- a private PostgreSQL --------------------------------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError(f"no PostgreSQL {name} under /usr/lib/postgresql/*/bin")
    return found[-1]


class PrivatePostgres:
    """A PostgreSQL instance of the scenario's own (the machine's server is never stopped): ``initdb`` and
    ``pg_ctl`` as the ``postgres`` user, which they require, in a folder that user owns."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="downsync-faults-pg-"))
        shutil.chown(self.directory, "postgres", "postgres")
        self.data = self.directory / "data"
        self.port = free_port()
        self._as_postgres(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")

    def _as_postgres(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, timeout=120, cwd=self.directory
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr or result.stdout}")
        return result

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
        )
        self._as_postgres(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "server.log"),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str, port: int | None = None) -> str:
        """A database; its URL goes through ``port`` (a proxy) when given."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{port or self.port}/{name}"

    def remove(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass
        shutil.rmtree(self.directory, ignore_errors=True)


class TcpProxy:
    """A TCP relay in front of the private PostgreSQL, so a scenario can lose answers the way a crash does: while
    ``hold`` is on, the server's answer to every COMMIT is kept back (the commit is done on the server, its caller
    does not hear so), everything else flows; ``cut`` closes every connection, dropping what was held;
    ``release`` forwards normally again."""

    def __init__(self, target_port: int) -> None:
        import asyncio

        self.target_port = target_port
        self.port = free_port()
        self.holding = False
        self.held = 0  # COMMIT answers held back since the last release
        self._writers: set[Any] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-proxy", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _run(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)

        async def pipe(reader: Any, writer: Any, state: dict[str, bool], upstream: bool) -> None:
            try:
                while data := await reader.read(65536):
                    if upstream:
                        # A simple-protocol Query message ('Q') whose text is COMMIT: its answer may be held back.
                        state["committing"] = data[:1] == b"Q" and b"COMMIT" in data[:32].upper()
                    elif state["committing"] and self.holding:
                        self.held += 1
                        while self.holding:
                            await asyncio.sleep(0.01)
                    writer.write(data)
                    await writer.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        async def serve(client_reader: Any, client_writer: Any) -> None:
            try:
                server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                client_writer.close()
                return
            self._writers |= {client_writer, server_writer}
            state = {"committing": False}
            try:
                await asyncio.gather(
                    pipe(client_reader, server_writer, state, True), pipe(server_reader, client_writer, state, False)
                )
            finally:
                self._writers -= {client_writer, server_writer}

        async def start() -> None:
            await asyncio.start_server(serve, "127.0.0.1", self.port)
            self._ready.set()

        self._loop.run_until_complete(start())
        self._loop.run_forever()

    def hold(self) -> None:
        self.holding = True

    def release(self) -> None:
        self.holding = False

    def cut(self) -> None:
        """Close every relayed connection (both sides), as the server's death does; held answers are lost."""

        def close_all() -> None:
            for writer in list(self._writers):
                transport = writer.transport
                if transport is not None:
                    transport.abort()

        self._loop.call_soon_threadsafe(close_all)


# --- the whole stack -------------------------------------------------------------------------------------------


@dataclass
class Tenant:
    name: str
    token: str
    tag_id: str


@dataclass
class Harness:
    """Everything one scenario runs on; build it with ``harness(...)``."""

    name: str
    backend: str
    directory: Path
    stack: Stack
    sim: Sim
    sim_process: Process
    database_url: str
    redis: EmbeddedRedis
    private_pg: PrivatePostgres | None = None
    proxy: TcpProxy | None = None  # between the service and the private PostgreSQL
    tenants: dict[str, Tenant] = field(default_factory=dict)
    worker_settings: dict[str, str] = field(default_factory=dict)
    keep: bool = False  # keep the logs folder (set on a FAIL)

    @property
    def ops(self) -> BackendOps:
        return OPS[self.backend]

    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        """The scenario's own connection to the store (straight to the server, never through the proxy)."""
        if self._engine is None:
            url = self.database_url
            if self.proxy is not None and self.private_pg is not None:
                url = url.replace(f":{self.proxy.port}/", f":{self.private_pg.port}/")
            self._engine = create_engine(url, pool_pre_ping=True, pool_size=2)
        return self._engine

    def sql(self, query: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(query), params).all())

    @property
    def database_name(self) -> str:
        return self.database_url.rsplit("/", 1)[1]

    # --- processes ---

    def start_worker(self, concurrency: int = 16) -> Process:
        return self.stack.start_worker(concurrency=concurrency, **self.worker_settings)

    def kill_worker(self, worker: Process) -> None:
        worker.kill()
        if worker in self.stack.workers:
            self.stack.workers.remove(worker)

    @staticmethod
    def signal(process: Process, sig: int) -> None:
        os.killpg(process.popen.pid, sig)

    def restart_redis(self) -> None:
        self.redis = start_redis(self.redis.directory, port=self.redis.port)

    def alive_check(self) -> list[str]:
        """Processes that died on their own (a scenario's own kills are not counted: they are removed first)."""
        dead = [p.name for p in [self.sim_process, self.stack.api, *self.stack.workers] if p and not p.alive()]
        return dead

    # --- tenants ---

    def add_tenant(self, name: str) -> Tenant:
        """The one place that knows how a backend's tenant is created against the simulator."""
        if self.backend == "ews":
            args = [
                "--ews-url",
                self.sim.ews_url,
                "--ews-username",
                SERVICE_ACCOUNT,
                "--ews-password",
                SERVICE_PASSWORD,
            ]
        elif self.backend == "graph":
            assert self.sim.ca_file is not None, "the Graph backend needs the simulator's HTTPS listener (--tls)"
            args = [
                "--backend",
                "graph",
                "--azure-tenant",
                DOMAIN,
                "--client-id",
                GRAPH_CLIENT_ID,
                "--client-secret",
                GRAPH_CLIENT_SECRET,
                "--authority",
                self.sim.base,
                "--graph-url",
                f"{self.sim.base}/v1.0",
                "--ca-bundle",
                str(self.sim.ca_file),
            ]
        else:
            raise ValueError(f"no such backend {self.backend!r}; one of {', '.join(BACKENDS)}")
        self.stack.run_cli("tenant", "create", name, *args)
        token = self.stack.run_cli("token", "create", "--tenant", name, "--scopes", "availability,sync").stdout.strip()
        [(tag_id,)] = self.sql("SELECT tag_id FROM tenant WHERE name = :name", name=name)
        tenant = Tenant(name=name, token=token, tag_id=tag_id)
        self.tenants[name] = tenant
        return tenant


def _start_sim(directory: Path, backend: str) -> tuple[Process, Sim]:
    port = free_port()
    args = [str(BIN / "downsync"), "ews-sim", "--host", "127.0.0.1", "--port", str(port), "--domain", DOMAIN]
    ca_file = None
    if backend == "graph":
        tls_dir = directory / "sim-tls"
        args += ["--tls", "--tls-dir", str(tls_dir)]
        ca_file = tls_dir / "ca.pem"
    log_file = directory / "ews-sim.log"
    with log_file.open("wb") as handle:
        popen = subprocess.Popen(args, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
    process = Process(name="ews-sim", popen=popen, log=log_file)
    scheme = "https" if backend == "graph" else "http"
    deadline = time.monotonic() + 30
    sim = None
    while time.monotonic() < deadline and process.alive():
        if ca_file is None or ca_file.exists():
            sim = Sim(f"{scheme}://127.0.0.1:{port}", ca_file)
            if sim.answers():
                return process, sim
        time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"the simulator did not start:\n{process.tail()}")


@contextmanager
def harness(
    name: str,
    backend: str = "ews",
    *,
    workers: int = 1,
    settings: dict[str, str] | None = None,
    private_postgres: bool = False,
    tenants: tuple[str, ...] = ("acme",),
    keep: bool = False,
) -> Iterator[Harness]:
    """Start everything, yield it, stop everything (and drop the database) whatever happens."""
    if backend not in BACKENDS:
        raise ValueError(f"no such backend {backend!r}; one of {', '.join(BACKENDS)}")
    directory = Path(tempfile.mkdtemp(prefix=f"downsync-faults-{name}-"))
    log(f"{name}: backend {backend}, logs in {directory}")
    failed = True
    with ExitStack() as cleanup:
        sim_process, sim = _start_sim(directory, backend)
        cleanup.callback(sim_process.stop)
        private_pg = proxy = None
        if private_postgres:
            private_pg = PrivatePostgres()
            cleanup.callback(private_pg.remove)
            private_pg.start()
            proxy = TcpProxy(private_pg.port)
            database_url = private_pg.create_database("downsync_faults", port=proxy.port)
        else:
            database_url = cleanup.enter_context(database("machine", directory)).url
        redis_server = start_redis(directory / "redis")
        env = make_env(directory, database_url, redis_server.url)
        env.update(BASE_SETTINGS)
        env.update(settings or {})
        stack = Stack(
            backend="machine",
            directory=directory,
            env=env,
            sim_url=sim.base,
            redis_url=redis_server.url,
            database_url=database_url,
            embedded_redis=redis_server,
        )
        current = Harness(
            name=name,
            backend=backend,
            directory=directory,
            stack=stack,
            sim=sim,
            sim_process=sim_process,
            database_url=database_url,
            redis=redis_server,
            private_pg=private_pg,
            proxy=proxy,
            keep=keep,
        )
        cleanup.callback(lambda: current.redis.stop())
        cleanup.callback(lambda: current._engine.dispose() if current._engine else None)

        def stop_service() -> None:
            for worker in stack.workers:
                worker.stop(timeout=10)
            if stack.api is not None:
                stack.api.stop()

        cleanup.callback(stop_service)
        stack.run_cli("db", "upgrade")
        for tenant in tenants:
            current.add_tenant(tenant)
        stack.start_api()
        for _ in range(workers):
            current.start_worker()
        log(f"{name}: simulator, store, Redis, API and {workers} worker(s) are up")
        try:
            yield current
            failed = False
        finally:
            for process in [*stack.workers, stack.api]:
                if process is not None and process.alive():
                    try:
                        os.killpg(process.popen.pid, signal.SIGCONT)  # a stalled worker must be able to stop
                    except ProcessLookupError:
                        pass
    if current.keep or failed:
        log(f"{name}: logs kept in {directory}")
    else:
        shutil.rmtree(directory, ignore_errors=True)


def main_guard(run: Any) -> None:
    """Run a scenario's ``main`` and exit with its code; a crash of the harness is a FAIL too."""
    try:
        code = run()
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # the scenario could not run: that is a failure with a reason
        import traceback

        traceback.print_exc()
        print(f"FAIL: the scenario did not run to the end: {type(exc).__name__}: {exc}", flush=True)
        code = 1
    sys.exit(code)


def verdict(name: str, figures: dict[str, Any], failures: list[str]) -> int:
    """Print the figures and the one-line verdict; a ``RESULT`` line carries both for the suite's table."""
    import json

    print(f"== {name}", flush=True)
    for key, value in figures.items():
        print(f"  {key}: {value}", flush=True)
    line = "PASS" if not failures else "FAIL: " + "; ".join(failures)
    print("RESULT " + json.dumps({"scenario": name, "pass": not failures, "figures": figures, "verdict": line}))
    print(line, flush=True)
    return 0 if not failures else 1

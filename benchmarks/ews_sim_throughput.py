"""Is the EWS simulator fast enough never to be the bottleneck of a benchmark?

Requirement: for CreateItem and for GetUserAvailability (100 mailboxes, 7-day window) the simulator,
on one core, must answer at least 3 times the requests per second that one exchangelib client thread
can send.

What is measured, for each operation, against ``downsync ews-sim`` running in a separate process
(non-strict, ``--domain bench.test``, service account ``svc@bench.test`` / ``demo``):

1. Client: one exchangelib 5.6.0 thread sends back-to-back requests for a fixed time.
   * CreateItem: ``CalendarItem(...).save(send_meeting_invitations="SendToNone")`` with subject, body,
     location, start, end, free/busy and one registered extended property.
   * GetUserAvailability: ``exchangelib.services.GetUserAvailability(protocol).call(...)`` with 100
     MailboxData (each mailbox seeded with 10 items) and a 7-day window; the TimeZone is built once, as
     ``Protocol.get_free_busy_info`` builds it, so GetServerTimeZones is not in the loop.
   "client req/s" is the wall-clock rate of that thread (it includes waiting for the server);
   "client CPU ms/req" is this process's CPU time (``time.process_time``) per request. 1000 divided by
   it is the rate one exchangelib thread could reach on one core if the server answered instantly.
2. Server: the very same request bytes exchangelib sent (captured with ``--capture-dir`` from a
   throw-away simulator) are replayed by several ``http.client`` threads for a fixed time, and the
   simulator's CPU time is read from ``/proc/<pid>/stat`` (utime + stime) before and after.
   "server CPU ms/req" = server CPU time / requests answered; "server capacity req/s on one core" =
   requests / server CPU seconds, i.e. the rate of one fully used core. The achieved wall-clock rate
   and the server's CPU use (100% = one core saturated) are printed per run.

"ratio" = server capacity / the client's rate on one core (1000 / client CPU ms/req), which equals
client CPU ms/req divided by server CPU ms/req. It is the stricter comparison: the client's wall-clock
rate is always lower. The requirement holds when the ratio is at least 3. Every phase runs
``--repeats`` times, interleaved, and the table shows medians.

Usage: ``python benchmarks/ews_sim_throughput.py [--seconds N] [--repeats R] [--threads T] [--check] [--profile]``.
``--check`` exits 1 when a ratio is under 3. ``--profile`` additionally replays each operation against
a simulator run under cProfile and prints where the server spends its time (slower; not in the table).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import io
import os
import platform
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import exchangelib
import requests
from exchangelib import (
    BASIC,
    IMPERSONATION,
    Account,
    CalendarItem,
    Configuration,
    Credentials,
    EWSDateTime,
    EWSTimeZone,
)
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.properties import FreeBusyView, FreeBusyViewOptions, MailboxData, TimeWindow, TimeZone
from exchangelib.protocol import FailFast, Protocol
from exchangelib.services import GetUserAvailability
from exchangelib.version import Build, Version

HOST = "127.0.0.1"
DOMAIN = "bench.test"
USERNAME = f"svc@{DOMAIN}"
PASSWORD = "demo"
CREATOR = f"organiser@{DOMAIN}"  # CreateItem goes here, apart from the availability mailboxes
MAILBOXES = [f"user{n:03d}@{DOMAIN}" for n in range(100)]
ITEMS_PER_MAILBOX = 10
TZ = EWSTimeZone("Europe/Copenhagen")
WEEK_START = EWSDateTime(2025, 6, 2, 0, 0, tzinfo=TZ)  # a Monday, far from DST changes
WEEK_END = WEEK_START + timedelta(days=7)
EWS_PATH = "/EWS/Exchange.asmx"
TARGET_RATIO = 3.0
MAX_CLIENT_REQUESTS = 100_000  # per client run, besides the time bound
MAX_LOAD_REQUESTS = 1_000_000  # per load thread and run, besides the time bound
STARTUP_TIMEOUT = 30.0
OPERATIONS = ("CreateItem", "GetUserAvailability")


class DownsyncEventId(ExtendedProperty):
    """One custom extended property, as the service stamps its items."""

    property_set_id = "c11ff724-aa03-4555-9952-8fa248a11c3e"
    property_name = "DownsyncEventId"
    property_type = "String"


CalendarItem.register("downsync_event_id", DownsyncEventId)


# --- the simulator subprocess ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def downsync_command() -> list[str]:
    script = Path(sys.executable).with_name("downsync")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c", "import sys; from downsync.cli import main; sys.exit(main())"]


class SimProcess:
    """``downsync ews-sim`` in a subprocess on a free port of 127.0.0.1; use as a context manager."""

    def __init__(self, capture_dir: Path | None = None, profile_to: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.ews_url = f"{self.url}{EWS_PATH}"
        command = downsync_command()
        if profile_to is not None:
            command = [command[0], "-m", "cProfile", "-o", str(profile_to), *command[1:]]
        command += ["ews-sim", "--host", HOST, "--port", str(self.port), "--domain", DOMAIN]
        if capture_dir is not None:
            command += ["--capture-dir", str(capture_dir)]
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SimProcess:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"the simulator exited with {self.proc.returncode}: {err}")
            try:
                if requests.get(f"{self.url}/_sim/mailboxes", timeout=1).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the simulator did not answer within {STARTUP_TIMEOUT:.0f} s")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # aiohttp's run_app exits cleanly on SIGTERM (cProfile then writes its file)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """utime + stime of the simulator process, from /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        # After the ")" that ends comm, field 3 (state) is index 0, so utime (14) and stime (15) are 11 and 12.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.url}/_sim{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()


# --- exchangelib, as the service uses it ----------------------------------------------------------


def make_account(ews_url: str, email: str) -> Account:
    config = Configuration(
        service_endpoint=ews_url,
        credentials=Credentials(USERNAME, PASSWORD),
        auth_type=BASIC,
        version=Version(build=Build(15, 1, 2507, 6)),
        retry_policy=FailFast(),
    )
    return Account(email, config=config, autodiscover=False, access_type=IMPERSONATION)


def create_one(account: Account, n: int) -> None:
    start = EWSDateTime(2025, 6, 3, 9, 0, tzinfo=TZ) + timedelta(minutes=30 * (n % 16))
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject=f"Service appointment #{n}",
        body="Replace the filter of the heat pump; the customer asked for a call 30 minutes before.",
        location="Nørrebrogade 12, 2200 København N",
        start=start,
        end=start + timedelta(hours=1),
        legacy_free_busy_status="Busy",
        downsync_event_id=f"0Hn5e00000{n:08d}",
    )
    item.save(send_meeting_invitations="SendToNone")
    if not item.id:
        raise RuntimeError("CreateItem returned no item id")


@dataclass
class Availability:
    protocol: Protocol
    timezone: TimeZone
    mailbox_data: list[MailboxData]

    @classmethod
    def build(cls, account: Account) -> Availability:
        protocol = account.protocol
        # As Protocol.get_free_busy_info does, but once: GetServerTimeZones stays out of the loop.
        tz_definition = next(iter(protocol.get_timezones(timezones=[TZ], return_full_timezone_data=True)))
        timezone = TimeZone.from_server_timezone(tz_definition=tz_definition, for_year=WEEK_START.year)
        data = [MailboxData(email=m, attendee_type="Required", exclude_conflicts=False) for m in MAILBOXES]
        return cls(protocol, timezone, data)

    def call(self) -> None:
        views = list(
            GetUserAvailability(self.protocol).call(
                tzinfo=TZ,
                mailbox_data=self.mailbox_data,
                timezone=self.timezone,
                free_busy_view_options=FreeBusyViewOptions(
                    time_window=TimeWindow(start=WEEK_START, end=WEEK_END),
                    merged_free_busy_interval=30,
                    requested_view="DetailedMerged",
                ),
            )
        )
        if len(views) != len(MAILBOXES) or not all(isinstance(v, FreeBusyView) for v in views):
            raise RuntimeError(f"GetUserAvailability answered badly: {views[:3]!r}")


def seed(sim: SimProcess) -> None:
    http = requests.Session()
    kinds = ("Busy", "Busy", "Tentative", "OOF", "Free")
    for m, email in enumerate(MAILBOXES):
        for i in range(ITEMS_PER_MAILBOX):
            start = datetime(2025, 6, 2 + i % 5, 6 + (i * 3 + m) % 9, 30 * (m % 2))  # UTC, weekdays
            item = {
                "subject": f"Visit {m}-{i}",
                "body": "Seeded for the throughput benchmark.",
                "location": "Customer site",
                "start": start.isoformat() + "Z",
                "end": (start + timedelta(minutes=30 * (1 + i % 3))).isoformat() + "Z",
                "freeBusy": kinds[i % len(kinds)],
            }
            response = http.post(f"{sim.url}/_sim/mailboxes/{email}/calendar", json=item, timeout=10)
            response.raise_for_status()


# --- measurements ---------------------------------------------------------------------------------


@dataclass
class ClientRun:
    requests: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.wall

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.requests


@dataclass
class ServerRun:
    requests: int
    errors: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.wall

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.requests

    @property
    def capacity(self) -> float:
        return self.requests / self.cpu


def client_run(sim: SimProcess, operation: str, send: Callable[[int], None], seconds: float) -> ClientRun:
    since = sim.control("GET", "/log")[-1]["seq"]
    n = 0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    deadline = wall0 + seconds
    while n < MAX_CLIENT_REQUESTS and time.perf_counter() < deadline:
        send(n)
        n += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    seen = Counter(e["operation"] for e in sim.control("GET", "/log", params={"since": since}))
    if seen != Counter({operation: n}):
        raise RuntimeError(f"expected {n} {operation} requests and nothing else, the simulator saw {dict(seen)}")
    return ClientRun(n, wall, cpu)


def replay(port: int, body: bytes, seconds: float, threads: int, sim: SimProcess | None = None) -> ServerRun:
    """The same request bytes from ``threads`` keep-alive connections for ``seconds``."""
    headers = {
        "Content-Type": "text/xml; charset=utf-8",
        "Accept-Encoding": "gzip, deflate",
        "Authorization": "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
    }
    counts = [0] * threads
    errors = [0] * threads
    failures: list[BaseException] = []
    start = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=30)
        try:
            start.wait(timeout=30)
            while counts[k] < MAX_LOAD_REQUESTS and time.perf_counter() < stop_at[0]:
                conn.request("POST", EWS_PATH, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                counts[k] += 1
                if response.status != 200 or b'ResponseClass="Error"' in data:
                    errors[k] += 1
        except BaseException as exc:  # reported below; a dead worker must not pass unnoticed
            failures.append(exc)
        finally:
            conn.close()

    workers = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for w in workers:
        w.start()
    cpu0 = sim.cpu_seconds() if sim else 0.0
    wall0 = time.perf_counter()
    stop_at[0] = wall0 + seconds
    start.wait(timeout=30)
    for w in workers:
        w.join(timeout=seconds + 60)
    wall = time.perf_counter() - wall0
    cpu = (sim.cpu_seconds() - cpu0) if sim else 0.0
    if failures:
        raise RuntimeError(f"a load thread failed: {failures[0]!r}")
    return ServerRun(sum(counts), sum(errors), wall, cpu)


def capture_requests(work_dir: Path) -> dict[str, bytes]:
    """One real request body per operation, as exchangelib sent it to a throw-away simulator."""
    capture_dir = work_dir / "capture"
    with SimProcess(capture_dir=capture_dir) as sim:
        account = make_account(sim.ews_url, CREATOR)
        create_one(account, 0)
        Availability.build(account).call()
    bodies = {}
    for operation in OPERATIONS:
        files = sorted(capture_dir.glob(f"*-{operation}.request.xml"))
        if not files:
            raise RuntimeError(f"no {operation} request was captured")
        bodies[operation] = files[-1].read_bytes()
    return bodies


def profile(bodies: dict[str, bytes], work_dir: Path, seconds: float, threads: int, top: int = 12) -> None:
    """Replay each operation against a simulator under cProfile and print where it spends its time."""
    for operation in OPERATIONS:
        out = work_dir / f"{operation}.prof"
        with SimProcess(profile_to=out) as sim:
            if operation == "GetUserAvailability":
                seed(sim)
            run = replay(sim.port, bodies[operation], seconds, threads)
        if not out.exists():
            print(f"\n[profile] {operation}: no profile was written")
            continue
        for sort, title, restriction in (
            # Request handling in ews_sim, without start-up (module imports, the CLI and serve()).
            ("cumulative", "cumulative time, simulator code", r"/ews_sim/(?!app\.py).*\((?!<module>)"),
            ("tottime", "own time, everything", ""),
        ):
            text = io.StringIO()
            stats = pstats.Stats(str(out), stream=text)
            if restriction:
                stats.sort_stats(sort).print_stats(restriction, top)
            else:
                stats.strip_dirs().sort_stats(sort).print_stats(top)
            lines = text.getvalue().splitlines()
            head = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
            print(f"\n[profile] {operation}, {run.requests} requests: top {top} by {title}")
            print("\n".join(line for line in lines[head:] if line.strip()))


# --- the run --------------------------------------------------------------------------------------


@contextlib.contextmanager
def work_directory() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ews-sim-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each measured run (default 4)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; medians are shown (default 3)")
    parser.add_argument("--threads", type=int, default=4, help="load threads replaying requests (default 4)")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if a ratio is under {TARGET_RATIO:g}")
    parser.add_argument("--profile", action="store_true", help="also profile the simulator with cProfile")
    args = parser.parse_args()
    if args.seconds <= 0 or not 1 <= args.repeats <= 20 or not 1 <= args.threads <= 26:
        parser.error("--seconds must be positive, --repeats 1..20 and --threads 1..26")

    for name in ("NO_PROXY", "no_proxy"):  # talk to 127.0.0.1 directly, whatever proxy the environment names
        os.environ[name] = ",".join(filter(None, (os.environ.get(name), HOST)))
    python = f"{platform.python_version()} ({platform.python_implementation()})"
    print(f"Python {python}, exchangelib {exchangelib.__version__}")
    print(f"cores: {os.cpu_count()}, load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with work_directory() as work_dir:
        bodies = capture_requests(work_dir)
        print("captured request bodies: " + ", ".join(f"{op} {len(b):,} bytes" for op, b in bodies.items()))
        clients: dict[str, list[ClientRun]] = {op: [] for op in OPERATIONS}
        servers: dict[str, list[ServerRun]] = {op: [] for op in OPERATIONS}
        with SimProcess() as sim:
            print(f"simulator pid {sim.pid} on {sim.ews_url}; seeding {len(MAILBOXES)} x {ITEMS_PER_MAILBOX} items")
            seed(sim)
            account = make_account(sim.ews_url, CREATOR)
            availability = Availability.build(account)
            senders: dict[str, Callable[[int], None]] = {
                "CreateItem": lambda n: create_one(account, n),
                "GetUserAvailability": lambda n: availability.call(),
            }
            for operation in OPERATIONS:  # warm-up: caches, connections, lazy imports on both sides
                for n in range(5):
                    senders[operation](n)
                replay(sim.port, bodies[operation], 0.5, args.threads)
            for repeat in range(1, args.repeats + 1):
                for operation in OPERATIONS:
                    c = client_run(sim, operation, senders[operation], args.seconds)
                    clients[operation].append(c)
                    s = replay(sim.port, bodies[operation], args.seconds, args.threads, sim)
                    servers[operation].append(s)
                    print(
                        f"run {repeat} {operation:<19} client {c.requests:5d} req {c.rate:8.1f} req/s "
                        f"{c.cpu_ms:7.3f} CPU ms/req | server {s.requests:6d} req {s.rate:8.1f} req/s wall, "
                        f"{s.cpu_ms:7.3f} CPU ms/req, CPU use {100 * s.cpu / s.wall:3.0f}%, errors {s.errors}"
                    )
                    if s.errors:
                        raise RuntimeError(f"{s.errors} replayed {operation} requests were answered with errors")
        if args.profile:
            profile(bodies, work_dir, args.seconds, args.threads)

    rows = []
    failed = False
    for operation in OPERATIONS:
        client_rate = statistics.median(c.rate for c in clients[operation])
        client_ms = statistics.median(c.cpu_ms for c in clients[operation])
        server_ms = statistics.median(s.cpu_ms for s in servers[operation])
        server_wall = statistics.median(s.rate for s in servers[operation])
        capacity = 1000 / server_ms
        ratio = client_ms / server_ms  # capacity / (1000 / client_ms)
        failed |= ratio < TARGET_RATIO
        rows.append(
            (
                operation,
                f"{client_rate:.1f}",
                f"{client_ms:.2f}",
                f"{server_ms:.3f}",
                f"{capacity:.0f}",
                f"{ratio:.1f}x",
                f"{server_wall:.0f}",
                f"{capacity / client_rate:.1f}x",
            )
        )
    header = (
        "operation",
        "client req/s (1 exchangelib thread)",
        "client CPU ms/req",
        "server CPU ms/req",
        "server capacity req/s on one core",
        "ratio capacity/client",
    )
    table = [header, *(r[:6] for r in rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    print(f"\nmedians of {args.repeats} runs of {args.seconds:g} s; replay with {args.threads} threads")
    for k, row in enumerate(table):
        cells = (
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        print("| " + " | ".join(cells) + " |")
        if k == 0:
            print("|" + "|".join("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":" for i, w in enumerate(widths)) + "|")
    print(
        f"\nratio = server capacity / (1000 / client CPU ms/req); target >= {TARGET_RATIO:g}. "
        "Against the client's wall-clock rate: "
        + ", ".join(f"{r[0]} {r[7]}" for r in rows)
        + "; replay wall-clock rate (2 cores shared with the load threads): "
        + ", ".join(f"{r[0]} {r[6]} req/s" for r in rows)
        + "."
    )
    if args.check and failed:
        print(f"FAIL: a ratio is under {TARGET_RATIO:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The service's own overhead, measured beside what it cannot avoid, in the same run (issue 13's table).

Everything real: the simulator (``downsync ews-sim``, non-strict) adds ``--latency-ms`` (50) to every Exchange
request; PostgreSQL (a fresh database on the machine's server); a private Redis; ``downsync api``; ``downsync
worker --concurrency=16``. The baselines use the same simulator and make the same Exchange requests:

* accept: ``wrk`` (32 connections) posting ``?wait=0`` postbacks with 3 attendees (a fresh event id each) to an API
  started with ``--workers 2``, beside ``wrk`` on the same API's ``/healthz``; workers are stopped meanwhile, so
  only accepting is measured. Also a 1000-mailbox postback's ``?wait=0`` answer time.
* pipeline: 300 events x 4 mailboxes posted at once, from the first POST until every job is final, beside bare
  exchangelib on 16 threads doing the same two requests per placement (FindItem by the tag, then CreateItem).
  Worker CPU per placement is the worker process tree's CPU over the placements; bare, this process's.
* latency: a 6-mailbox postback answered with ``?wait=10`` (p50 of ``--rounds``), beside 6 placements on 6 threads.
* 1000 mailboxes: one postback, from the POST until its job is final, beside bare on 16 threads.
* scale-out: the pipeline again with two worker processes.

Usage: ``python -m benchmarks.pipeline [--latency-ms 50] [--rounds 20] [--seconds 10] [--skip-accept]
[--cold-directory]`` (needs ``wrk`` on the PATH for the accept row; about 4 minutes). The tenant's address cache is
filled first, as after a day of use, unless ``--cold-directory``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import exchangelib
import redis
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
from exchangelib.fields import FieldPath
from exchangelib.folders import Calendar, DistinguishedFolderId, Root
from exchangelib.properties import Mailbox
from exchangelib.protocol import FailFast
from exchangelib.restriction import Q, Restriction
from exchangelib.services import FindItem
from exchangelib.version import Build, Version
from sqlalchemy import text

from benchmarks.faults.stack import DOMAIN, SERVICE_ACCOUNT, SERVICE_PASSWORD, Harness, harness, log
from downsync.embedded import free_port

UTC_EWS = EWSTimeZone("UTC")
START = datetime(2031, 3, 3, 9, tzinfo=UTC)
POSTBACK = "/api/salesforce/scheduler/postback"


class BenchEventId(ExtendedProperty):
    property_set_id = "6f1c2b3a-0000-4000-8000-00000000b0b0"
    property_name = "BenchEventId"
    property_type = "String"


if "bench_event_id" not in {f.name for f in CalendarItem.FIELDS}:
    CalendarItem.register("bench_event_id", BenchEventId)


def people(n: int, start: int = 0) -> list[str]:
    return [f"user{i:05d}@{DOMAIN}" for i in range(start, start + n)]


def body(event_id: str, mailboxes: list[str], hour: int = 0) -> dict[str, Any]:
    begin = START + timedelta(hours=hour)
    return {
        "id": event_id,
        "organizerEmail": mailboxes[0],
        "subject": f"Visit {event_id}",
        "body": "measured",
        "startTime": begin.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "endTime": (begin + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "attendees": [{"email": m, "isRequired": "true"} for m in mailboxes[1:]],
    }


# --- bare exchangelib: the same two requests per placement, nothing of downsync's -------------------------------


class Bare:
    def __init__(self, ews_url: str, threads: int) -> None:
        self.config = Configuration(
            service_endpoint=ews_url,
            credentials=Credentials(SERVICE_ACCOUNT, SERVICE_PASSWORD),
            auth_type=BASIC,
            version=Version(build=Build(15, 1, 2507, 6)),
            retry_policy=FailFast(),
            max_connections=threads,
        )
        self.threads = threads
        self._accounts: dict[str, Account] = {}
        self._lock = threading.Lock()

    def account(self, mailbox: str) -> Account:
        with self._lock:
            if mailbox not in self._accounts:
                self._accounts[mailbox] = Account(
                    mailbox, config=self.config, autodiscover=False, access_type=IMPERSONATION
                )
            return self._accounts[mailbox]

    def place(self, mailbox: str, event_id: str) -> None:
        acct = self.account(mailbox)
        folder = Calendar(
            root=Root(account=acct),
            _distinguished_id=DistinguishedFolderId(id="calendar", mailbox=Mailbox(email_address=mailbox)),
        )
        restriction = Restriction(Q(bench_event_id=event_id), folders=[folder], applies_to=Restriction.ITEMS)
        found = FindItem(account=acct, page_size=100).call(
            folders=[folder],
            additional_fields={FieldPath(field=CalendarItem.get_field_by_fieldname("bench_event_id"))},
            restriction=restriction,
            order_fields=None,
            shape="IdOnly",
            query_string=None,
            depth="Shallow",
            calendar_view=None,
            max_items=None,
            offset=0,
        )
        if list(found):
            return
        start = EWSDateTime.from_datetime(START).astimezone(UTC_EWS)
        CalendarItem(
            account=acct,
            folder=folder,
            subject=f"Visit {event_id}",
            start=start,
            end=start + timedelta(hours=1),
            legacy_free_busy_status="Busy",
            bench_event_id=event_id,
        ).save(send_meeting_invitations="SendToNone")

    def run(self, placements: list[tuple[str, str]], threads: int | None = None) -> tuple[float, float]:
        """Seconds of wall time and of this process's CPU for all the placements."""
        cpu, wall = time.process_time(), time.monotonic()
        with ThreadPoolExecutor(threads or self.threads) as pool:
            list(pool.map(lambda p: self.place(*p), placements))
        return time.monotonic() - wall, time.process_time() - cpu


# --- the service ------------------------------------------------------------------------------------------------


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of a process and every descendant, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return total


def wait_final(h: Harness, job_ids: list[str], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [(pending,)] = h.sql("SELECT count(*) FROM job WHERE state = 'pending' AND id = ANY(:ids)", ids=job_ids)
        if not pending:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{pending} jobs still pending after {timeout:.0f} s")


def post(http: requests.Session, h: Harness, payload: dict[str, Any], wait: float) -> requests.Response:
    token = next(iter(h.tenants.values())).token
    response = http.post(
        f"{h.stack.api_url}{POSTBACK}",
        params={"wait": wait},
        json=payload,
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    )
    if response.status_code not in (200, 202):
        raise RuntimeError(f"postback refused: {response.status_code} {response.text[:300]}")
    return response


def known_addresses(h: Harness, addresses: list[str]) -> None:
    """Record every address as already resolved to itself, as a tenant's directory cache holds its users' after
    the first day: the measured rows then make the same two Exchange requests per placement as the baseline."""
    rows = [{"address": a.lower(), "name": name} for name in h.tenants for a in addresses]
    with h.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO mailboxaddress (tenant_id, address, primary_address, resolved_at) "
                "SELECT id, :address, :address, now() FROM tenant WHERE name = :name "
                "ON CONFLICT (tenant_id, address) DO UPDATE SET resolved_at = excluded.resolved_at"
            ),
            rows,
        )


def pipeline(h: Harness, events: int, per_event: int, offset: int) -> tuple[float, float, int]:
    """Post ``events`` events at once; seconds until all jobs are final, worker CPU seconds, placements."""
    cpu_before = sum(tree_cpu(w.popen.pid) for w in h.stack.workers)
    http = requests.Session()
    started = time.monotonic()
    payloads = [body(f"pipe-{offset}-{n}", people(per_event, (offset + n * per_event) % 5000)) for n in range(events)]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda p: post(http, h, p, 0), payloads))
    wait_final(h, [r.headers["X-Job-Id"] for r in responses])
    elapsed = time.monotonic() - started
    cpu = sum(tree_cpu(w.popen.pid) for w in h.stack.workers) - cpu_before
    return elapsed, cpu, events * per_event


def wrk(url: str, seconds: int, connections: int, script: Path | None = None) -> tuple[float, float, float]:
    """Requests per second, p50 and p99 latency (ms) of a wrk run."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        args[1:1] = ["-s", str(script)]
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 60).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def percentile(name: str) -> float:
        value, unit = re.search(rf"{name}%\s+([\d.]+)(\w+)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError(f"wrk saw {bad.group(1)} refused requests:\n{out}")
    return rate, percentile("50"), percentile("99")


WRK_SCRIPT = """
counter = 0
request = function()
  counter = counter + 1
  local id = "acc-" .. math.random(1, 1000000000) .. "-" .. counter
  local body = '{"id": "' .. id .. '", "organizerEmail": "user00001@%(domain)s", "subject": "s", '
    .. '"startTime": "2031-03-03T09:00:00Z", "endTime": "2031-03-03T10:00:00Z", "attendees": ['
    .. '{"email": "user00002@%(domain)s", "isRequired": "true"}, '
    .. '{"email": "user00003@%(domain)s", "isRequired": "true"}]}'
  return wrk.format("POST", "%(path)s?wait=0", {["Authorization"] = "Bearer %(token)s",
    ["Content-Type"] = "application/json"}, body)
end
"""


def accept_rows(h: Harness, seconds: int, directory: Path) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        log("accept: no wrk on the PATH; skipped")
        return {}
    for worker in list(h.stack.workers):
        worker.stop()
    h.stack.workers.clear()
    port = free_port()  # the main API's port + 1 was sometimes another process's
    # The per-tenant write limit (100/s by default) would answer 429 to part of the load: accepting is measured.
    unlimited = {**h.stack.env, "DOWNSYNC_RATE_LIMIT_WRITES": "1000000/second"}
    api = h.stack._spawn("api2", ["api", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"], env=unlimited)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{base}/healthz", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
        if time.monotonic() > deadline or not api.alive():
            raise RuntimeError(f"the API for the accept rows did not start:\n{api.tail()}")
    token = next(iter(h.tenants.values())).token
    script = directory / "postback.lua"
    script.write_text(WRK_SCRIPT % {"domain": DOMAIN, "path": POSTBACK, "token": token})
    try:
        wrk(f"{base}/healthz", 3, 32)  # warm-up
        health = wrk(f"{base}/healthz", seconds, 32)
        accepted = wrk(base, seconds, 32, script)
        http = requests.Session()
        big = []
        for n in range(5):
            began = time.monotonic()
            response = http.post(
                f"{base}{POSTBACK}",
                params={"wait": 0},
                json=body(f"big-accept-{n}", people(1000, 2000)),
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            big.append((time.monotonic() - began) * 1000)
            assert response.status_code == 202, response.text
    finally:
        api.stop()
        with h.engine.begin() as connection:  # nothing of the accept run is worked on afterwards
            connection.execute(text("UPDATE placement SET due_at = NULL"))
        redis.Redis.from_url(h.redis.url).delete("downsync")
    return {"healthz": health, "accepted": accepted, "big_ms": statistics.median(big)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--skip-accept", action="store_true")
    parser.add_argument("--events", type=int, default=300, help="events of the pipeline runs (4 mailboxes each)")
    parser.add_argument("--big", type=int, default=1000, help="mailboxes of the one big postback")
    parser.add_argument(
        "--cold-directory",
        action="store_true",
        help="do not pre-fill the address cache: every address costs a directory lookup (a third request)",
    )
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="downsync-pipeline-"))
    figures: dict[str, Any] = {}
    # The production default for the address cache: the test stack's 6 s would send most placements of a run to
    # the directory after all, whatever was filled in first.
    # And no tenant write limit (100/s by default): the runs post as fast as the API accepts.
    settings = {
        "DOWNSYNC_WORKER_METRICS_PORT": "0",
        "DOWNSYNC_ADDRESS_CACHE_SECONDS": "86400",
        "DOWNSYNC_RATE_LIMIT_WRITES": "1000000/second",
    }
    with harness("pipeline", "ews", workers=1, settings=settings) as h:
        h.sim.fault(latencyMs=args.latency_ms)
        if not args.cold_directory:
            known_addresses(h, people(5000, 0))
        bare = Bare(h.sim.ews_url, 16)
        # Warm both sides (connections, the tenant's gateway, the simulator's mailboxes).
        post(requests.Session(), h, body("warm-1", people(4, 4900)), 20)
        bare.run([(m, "warm-bare") for m in people(16, 4800)])

        if not args.skip_accept:
            figures["accept"] = accept_rows(h, args.seconds, directory)
            h.start_worker()

        log(f"pipeline: {args.events} events x 4 mailboxes")
        wall, cpu, placements = pipeline(h, args.events, 4, 0)
        bare_wall, bare_cpu = bare.run([(m, f"bare-pipe-{i}") for i, m in enumerate(people(placements, 0))])
        figures["pipeline"] = {
            "service_per_s": placements / wall,
            "bare_per_s": placements / bare_wall,
            "service_cpu_ms": cpu / placements * 1000,
            "bare_cpu_ms": bare_cpu / placements * 1000,
        }

        log("latency: 6-mailbox postbacks with wait=10")
        http = requests.Session()
        service_ms, bare_ms = [], []
        for n in range(args.rounds):
            mailboxes = people(6, 3000 + n * 6)
            began = time.monotonic()
            answer = post(http, h, body(f"lat-{n}", mailboxes), 10)
            service_ms.append((time.monotonic() - began) * 1000)
            assert answer.status_code == 200, answer.text
            began = time.monotonic()
            bare.run([(m, f"bare-lat-{n}") for m in people(6, 3500 + n * 6)], threads=6)
            bare_ms.append((time.monotonic() - began) * 1000)
        figures["latency"] = {"service_p50": statistics.median(service_ms), "bare_p50": statistics.median(bare_ms)}

        log(f"one postback with {args.big} mailboxes")
        began = time.monotonic()
        response = post(http, h, body("thousand", people(args.big, 1000)), 0)
        wait_final(h, [response.headers["X-Job-Id"]])
        thousand = time.monotonic() - began
        bare_thousand, _ = bare.run([(m, "bare-thousand") for m in people(args.big, 1000)])
        figures["thousand"] = {"service_s": thousand, "bare_s": bare_thousand}

        log("scale-out: the pipeline with two workers")
        h.start_worker()
        wall2, _, placements2 = pipeline(h, args.events, 4, 6000)
        figures["scale"] = {"one_per_s": placements / wall, "two_per_s": placements2 / wall2}
    print(report(figures, args))
    (directory / "figures.json").write_text(json.dumps(figures, indent=2))
    return 0


def report(f: dict[str, Any], args: argparse.Namespace) -> str:
    rows = []
    if f.get("accept"):
        a = f["accept"]
        rows.append(
            f"| postbacks accepted/s, `?wait=0`, 3 attendees, API `--workers 2`, 32 connections | "
            f"{a['accepted'][0]:.0f} (p50 {a['accepted'][1]:.0f} ms, p99 {a['accepted'][2]:.0f} ms) | "
            f"`/healthz`: {a['healthz'][0]:.0f}/s | {a['accepted'][0] / a['healthz'][0]:.2f} |"
        )
        rows.append(
            f"| a 1000-mailbox postback accepted (`?wait=0`), median of 5 | {a['big_ms']:.0f} ms | target 100 ms | |"
        )
    p = f["pipeline"]
    rows.append(
        f"| placements/s through the pipeline (300 events x 4 mailboxes) | {p['service_per_s']:.0f} | "
        f"bare exchangelib, 16 threads: {p['bare_per_s']:.0f} | {p['service_per_s'] / p['bare_per_s']:.2f} |"
    )
    lat = f["latency"]
    rows.append(
        f"| 6-mailbox postback with `?wait=10`, p50 | {lat['service_p50']:.0f} ms | bare, 6 threads: "
        f"{lat['bare_p50']:.0f} ms | {lat['service_p50'] / lat['bare_p50']:.2f} |"
    )
    t = f["thousand"]
    rows.append(
        f"| one postback with 1000 mailboxes, POST to all final | {t['service_s']:.1f} s | bare, 16 threads: "
        f"{t['bare_s']:.1f} s | {t['service_s'] / t['bare_s']:.2f} |"
    )
    rows.append(
        f"| worker CPU per placement | {p['service_cpu_ms']:.1f} ms | bare exchangelib {p['bare_cpu_ms']:.1f} ms | "
        f"{p['service_cpu_ms'] / p['bare_cpu_ms']:.2f} |"
    )
    s = f["scale"]
    rows.append(
        f"| two worker processes vs one (placements/s) | {s['two_per_s']:.0f} | one: {s['one_per_s']:.0f} | "
        f"{s['two_per_s'] / s['one_per_s']:.2f} |"
    )
    head = (
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"exchangelib {exchangelib.__version__}, {args.latency_ms} ms per Exchange request, address cache "
        f"{'empty' if args.cold_directory else 'filled'}\n\n"
        "| measure | downsync | baseline in the same run | ratio |\n| --- | ---: | ---: | ---: |"
    )
    return head + "\n" + "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())

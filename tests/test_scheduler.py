"""``downsync scheduler`` and ``downsync worker --no-dispatch``: the layout Kubernetes runs (many workers that only
run tasks, one scheduler that dispatches), on real processes: SQLite, an embedded Redis, a memory-backend tenant."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from downsync.embedded import free_port, start_redis
from tests.support.stack import Process, Stack, make_env


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    server = start_redis(tmp_path / "redis")
    database_url = f"sqlite:///{tmp_path / 'downsync.db'}"
    env = make_env(tmp_path, database_url, server.url) | {
        # A lost message is sent again 1 s after it was sent; the dispatcher looks five times a second.
        "DOWNSYNC_REDELIVER_SECONDS": "1",
        "DOWNSYNC_DISPATCH_INTERVAL_SECONDS": "0.2",
    }
    stack = Stack(
        backend="embedded",
        directory=tmp_path,
        env=env,
        sim_url="",
        redis_url=server.url,
        database_url=database_url,
        embedded_redis=server,
    )
    try:
        stack.run_cli("db", "upgrade")
        stack.run_cli("tenant", "create", "acme", "--backend", "memory", "--memory-org", "scheduler-test")
        stack.tokens["default"] = stack.run_cli(
            "token", "create", "--tenant", "acme", "--scopes", "sync"
        ).stdout.strip()
        stack.start_api()
        yield stack
    finally:
        stack.stop_workers()
        if stack.api is not None:
            stack.api.stop()
        server.stop()


def _worker(stack: Stack, *options: str) -> Process:
    worker = stack._spawn("worker", ["worker", "--concurrency=2", "--without-mingle", "--without-gossip", *options])
    stack.workers.append(worker)
    stack._wait_until(lambda: "ready." in worker.log.read_text(errors="replace"), worker, "the worker did not start")
    return worker


def _postback(stack: Stack, event_id: str) -> str:
    body = {
        "id": event_id,
        "organizerEmail": "alice@acme.test",
        "startTime": "2030-01-07T10:00:00Z",
        "endTime": "2030-01-07T11:00:00Z",
        "attendees": [{"email": "bob@acme.test", "isRequired": "true"}],
    }
    answer = stack.postback("POST", body, wait=0)
    assert answer.status_code == 202, answer.text
    return answer.headers["X-Job-Id"]


def test_workers_without_dispatch_leave_lost_work_to_the_scheduler(stack: Stack) -> None:
    job_id = _postback(stack, "evt-lost")
    broker = redis.Redis.from_url(stack.redis_url)
    queued = [json.loads(base64.b64decode(json.loads(m)["body"]))[0][0] for m in broker.lrange("downsync", 0, -1)]
    assert [len(placements) for placements in queued] == [2]  # one message: the organizer's and the attendee's
    broker.delete("downsync")  # the broker lost the messages (a restart without persistence)

    _worker(stack, "--no-dispatch")
    # Well past the redelivery time: with no dispatcher anywhere, nothing sends the work again.
    time.sleep(3)
    assert stack.job(job_id)["state"] == "pending"
    assert stack.pending_placements() == 2

    metrics_port = free_port()
    scheduler = stack._spawn(
        "scheduler", ["scheduler"], env=stack.env | {"DOWNSYNC_WORKER_METRICS_PORT": str(metrics_port)}
    )
    try:
        job = stack.wait_job(job_id, timeout=30)
        assert job["state"] == "succeeded", (job, scheduler.tail())
        # The scheduler serves its own metrics: the work it sent again, and why.
        scraped = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'downsync_work_redispatched_total{reason="message_lost"} 2.0' in scraped
        # It stops promptly and cleanly on SIGTERM (Kubernetes' stop), with no task of its own to finish.
        os.kill(scheduler.popen.pid, signal.SIGTERM)
        assert scheduler.popen.wait(timeout=10) == 0, scheduler.tail()
    finally:
        scheduler.stop()


def test_a_worker_dispatches_by_default(stack: Stack) -> None:
    """A single worker (a small install, the demo) still needs nothing else."""
    job_id = _postback(stack, "evt-alone")
    redis.Redis.from_url(stack.redis_url).delete("downsync")
    _worker(stack)
    assert stack.wait_job(job_id, timeout=30)["state"] == "succeeded"


def test_the_supervisor_keeps_none_of_the_command_lines_imports(stack: Stack) -> None:
    """``downsync worker`` execs a bare supervisor: same pid (signals reach it), the standard library only."""
    worker = _worker(stack)
    pid = worker.popen.pid
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert b"downsync.supervise" in cmdline, cmdline
    rss_kb = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmRSS")
    )
    assert rss_kb < 30_000, f"the supervisor holds {rss_kb} kB"

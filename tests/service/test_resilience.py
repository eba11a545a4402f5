"""What Exchange, workers and the broker do wrong, and how the service comes through it."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import Any

import pytest

from downsync.embedded import start_redis
from ews_sim.testing import SimClient
from tests.service.test_postback import create_body, event_id, tagged
from tests.support.stack import Stack

MANY = [f"user{n}@fabrikam.com" for n in range(6)]


def many_body(eid: str) -> dict[str, Any]:
    return create_body(eid, attendees=[{"email": e, "isRequired": "true"} for e in MANY])


def test_half_the_calls_throttled_all_mailboxes_end_with_no_error(service: Stack, sim: SimClient) -> None:
    dialect = service.dialect
    # Every calendar request, whoever makes it (Graph's token requests aside: msal is not ours to throttle).
    for operation in (dialect.find, dialect.create, dialect.update, dialect.delete):
        sim.fault(operation=operation, probability=0.5, seed=7, **dialect.throttle(400))
    eid = event_id()
    response = service.postback("POST", many_body(eid), wait=0)
    job = service.wait_job(response.headers["X-Job-Id"], timeout=90)
    assert job["state"] == "succeeded", [
        (r["email"], r["errorCode"], r["attempts"], r["message"]) for r in job["results"]
    ]
    assert max(r["attempts"] for r in job["results"]) > 1  # some really were throttled
    for email in ["alice@contoso.com", *MANY]:
        assert len(tagged(sim, email, eid)) == 1
    # After every throttled answer, that mailbox's next request came no sooner than the server asked.
    by_mailbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in sim.log():
        by_mailbox[entry["mailbox"]].append(entry)
    waits = []
    for entries in by_mailbox.values():
        for before, after in itertools.pairwise(entries):
            if before["responseCode"] == dialect.throttled_code:
                waits.append(after["time"] - (before["time"] + before["durationMs"] / 1000))
    assert waits and min(waits) >= dialect.back_off_seconds(400) - 0.05, waits


def test_permanent_codes_are_final_at_once_and_throttling_never_is(service: Stack, sim: SimClient) -> None:
    service.stop_workers()
    service.start_worker(retry_budget_seconds="3")
    dialect = service.dialect
    sim.fault(operation=dialect.find, mailbox="bob@contoso.com", responseCode="ErrorAccessDenied")
    sim.fault(operation=dialect.find, mailbox="carol@contoso.com", responseCode=dialect.transient_code)
    sim.fault(operation=dialect.find, mailbox="dave@contoso.com", **dialect.throttle(300))
    eid = event_id()
    people = ("bob@contoso.com", "carol@contoso.com", "dave@contoso.com")
    attendees = [{"email": e, "isRequired": "true"} for e in people]
    response = service.postback("POST", create_body(eid, attendees=attendees), wait=0)
    job_id = response.headers["X-Job-Id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        results = {r["email"]: r for r in service.job(job_id)["results"]}
        if results["carol@contoso.com"]["errorCode"] != "Pending":
            break
        time.sleep(0.2)
    assert (results["alice@contoso.com"]["errorCode"], results["alice@contoso.com"]["attempts"]) == ("NoError", 1)
    assert (results["bob@contoso.com"]["errorCode"], results["bob@contoso.com"]["attempts"]) == ("ErrorAccessDenied", 1)
    # A transient failure that never clears is final once the retry budget is spent.
    assert results["carol@contoso.com"]["errorCode"] == dialect.transient_code
    assert results["carol@contoso.com"]["attempts"] > 1
    # Throttling only asks to wait: still pending long after the budget, with the server's words, never final.
    time.sleep(2)
    dave = service.job(job_id)["results"][3]
    assert dave["errorCode"] == "Pending" and dave["attempts"] > 2
    assert dave["message"]  # the server's own words
    assert service.job(job_id)["state"] == "pending"
    sim.clear_faults()
    job = service.wait_job(job_id, timeout=30)
    assert [r["errorCode"] for r in job["results"]] == [
        "NoError",
        "ErrorAccessDenied",
        dialect.transient_code,
        "NoError",
    ]
    assert job["state"] == "partial"
    assert len(tagged(sim, "dave@contoso.com", eid)) == 1 and tagged(sim, "bob@contoso.com", eid) == []


def test_a_worker_killed_mid_job_leaves_no_duplicate(service: Stack, sim: SimClient) -> None:
    # The simulator holds every CreateItem for a while, then performs it although its caller is gone.
    sim.fault(operation=service.dialect.create, latencyMs=1500)
    eid = event_id()
    response = service.postback("POST", many_body(eid), wait=0)
    deadline = time.monotonic() + 20
    while not any(e["operation"] == service.dialect.find for e in sim.log()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # CreateItem calls are in flight now
    for worker in service.workers:
        worker.kill()
    service.workers.clear()
    time.sleep(1.5)  # the simulator finishes the orphaned creates
    sim.clear_faults()
    service.start_worker()
    job = service.wait_job(response.headers["X-Job-Id"], timeout=60)
    assert job["state"] == "succeeded", [
        (r["email"], r["errorCode"], r["attempts"], r["message"]) for r in job["results"]
    ]
    for email in ["alice@contoso.com", *MANY]:
        assert len(tagged(sim, email, eid)) == 1, email


def test_broker_down_while_postbacks_arrive_then_back(service: Stack, sim: SimClient) -> None:
    if service.embedded_redis is None:
        pytest.skip("stopping the machine's shared Redis is not this test's to do; the embedded backend runs it")
    redis_server = service.embedded_redis
    redis_server.stop()
    try:
        accepted = []
        for _ in range(3):
            eid = event_id()
            started = time.monotonic()
            response = service.postback("POST", create_body(eid), wait=1)
            assert response.status_code == 202, response.text
            assert time.monotonic() - started < 5
            assert {r["errorCode"] for r in response.json()} == {"Pending"}
            accepted.append((eid, response.headers["X-Job-Id"]))
    finally:
        service.embedded_redis = start_redis(redis_server.directory, port=redis_server.port)
    for eid, job_id in accepted:
        job = service.wait_job(job_id, timeout=90)
        assert job["state"] == "succeeded", [
            (r["email"], r["errorCode"], r["attempts"], r["message"]) for r in job["results"]
        ]
        for email in ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com"):
            assert len(tagged(sim, email, eid)) == 1


def test_a_tenant_that_cannot_be_planned_fails_instead_of_waiting_forever(service: Stack, sim: SimClient) -> None:
    # Written with another secret key: the workers cannot decrypt this tenant's Exchange credentials.
    other_key = {**service.env, "DOWNSYNC_SECRET_KEY": "a-rotated-key"}
    name = f"rotated-{event_id()}"
    service.create_tenant(name, env=other_key)
    token = service.run_cli("token", "create", "--tenant", name, "--scopes", "sync").stdout.strip()
    response = service.postback("POST", create_body(event_id()), token=token, wait=20)
    assert response.status_code == 200, response.text
    assert {r["errorCode"] for r in response.json()} == {"ErrorInternalServerError"}
    job = service.job(response.headers["X-Job-Id"], token=token)
    assert "DOWNSYNC_SECRET_KEY" in job["results"][0]["message"]
    assert sim.log() == []


def test_workers_stay_within_the_service_accounts_concurrency(service: Stack, sim: SimClient) -> None:
    if service.dialect.name != "ews":
        pytest.skip("Graph limits requests per mailbox (the turn), not per account")
    name = f"capped{int(time.time() * 1000) % 10**9}"
    service.create_tenant(name, extra=["--ews-max-concurrency", "2"])
    token = service.run_cli("token", "create", "--tenant", name, "--scopes", "sync").stdout.strip()
    # Exchange's own limit for the account, and calls slow enough that the worker's 4 threads would overlap.
    sim.limits(max_concurrency=2)
    sim.fault(operation=service.dialect.create, latencyMs=300)
    sim.fault(operation=service.dialect.find, latencyMs=100)
    try:
        eid = event_id()
        response = service.postback("POST", many_body(eid), token=token, wait=0)
        assert response.status_code == 202, response.text
        job = service.wait_job(response.headers["X-Job-Id"], timeout=90, token=token)
    finally:
        sim.limits(max_concurrency=27)
    assert job["state"] == "succeeded", [(r["email"], r["errorCode"], r["message"]) for r in job["results"]]
    assert all(r["attempts"] == 1 for r in job["results"]), job["results"]
    # Exchange never had to refuse one: the workers waited for one another instead.
    assert [e for e in sim.log() if e["httpStatus"] != 200] == []
    for email in ["alice@contoso.com", *MANY]:
        assert len(tagged(sim, email, eid)) == 1

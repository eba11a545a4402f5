"""Fault rules on the Graph front door, Graph's throttling answers and its per-mailbox concurrency limit."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest
import requests
from msal.exceptions import MsalServiceError

from ews_sim.testing import GRAPH_SCOPE, SERVICE_ACCOUNT, SERVICE_PASSWORD, SimClient, graph_client
from tests.ews_sim.graph.support import ALICE, BOB, CAROL, error, event
from tests.ews_sim.test_faults import RAW_GET_FOLDER


def graph_entries(sim: SimClient, operation: str) -> list[dict[str, Any]]:
    return [e for e in sim.log() if e["operation"] == operation]


def test_429_with_retry_after_then_success(sim: SimClient, graph: httpx.Client) -> None:
    sim.fault(operation="graph.createEvent", httpStatus=429, retryAfterSeconds=7, count=2)
    for _ in range(2):
        throttled = graph.post(f"/users/{ALICE}/events", json=event())
        assert error(throttled)[:2] == (429, "TooManyRequests") and throttled.headers["Retry-After"] == "7"
    assert sim.calendar(ALICE) == []  # throttling comes before any side effect
    assert graph.post(f"/users/{ALICE}/events", json=event()).status_code == 201
    assert [(e["httpStatus"], e["responseCode"]) for e in graph_entries(sim, "graph.createEvent")] == [
        (429, "TooManyRequests"),
        (429, "TooManyRequests"),
        (201, "NoError"),
    ]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (503, "serviceNotAvailable"),
        (504, "UnknownError"),
        (500, "ErrorInternalServerError"),
        (401, "InvalidAuthenticationToken"),
    ],
)
def test_http_status_faults_answer_with_graphs_bodies(
    sim: SimClient, graph: httpx.Client, status: int, code: str
) -> None:
    sim.fault(operation="graph.listEvents", httpStatus=status, count=1)
    assert error(graph.get(f"/users/{ALICE}/events"))[:2] == (status, code)
    assert graph.get(f"/users/{ALICE}/events").status_code == 200


def test_a_response_code_fault_and_its_scope(sim: SimClient, graph: httpx.Client) -> None:
    sim.fault(operation="graph.updateEvent", mailbox=BOB, responseCode="ApplicationThrottled", retryAfterSeconds=2)
    sim.fault(mailbox=CAROL, responseCode="ErrorServerBusy", count=1)  # any operation, both front doors
    alices = graph.post(f"/users/{ALICE}/events", json=event()).json()
    bobs = graph.post(f"/users/{BOB}/events", json=event()).json()
    assert graph.patch(f"/users/{ALICE}/events/{alices['id']}", json={"subject": "x"}).status_code == 200
    refused = graph.patch(f"/users/{BOB}/events/{bobs['id']}", json={"subject": "x"})
    assert error(refused)[:2] == (429, "ApplicationThrottled") and refused.headers["Retry-After"] == "2"
    assert error(graph.get(f"/users/{CAROL}/events"))[:2] == (503, "ErrorServerBusy")


def test_a_schedule_fault_fails_only_that_schedule(sim: SimClient, graph: httpx.Client) -> None:
    sim.fault(operation="graph.getSchedule", mailbox=BOB, responseCode="ErrorMailboxStoreUnavailable")
    body = {
        "schedules": [ALICE, BOB],
        "startTime": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
        "endTime": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
    }
    alice, bob = graph.post(f"/users/{ALICE}/calendar/getSchedule", json=body).json()["value"]
    assert alice["availabilityView"] == "00"
    assert bob["error"]["responseCode"] == "ErrorMailboxStoreUnavailable" and "availabilityView" not in bob


def test_latency_hang_and_drop(sim: SimClient, graph: httpx.Client) -> None:
    sim.fault(operation="graph.getCalendar", latencyMs=150, count=1)
    started = time.monotonic()
    assert graph.get(f"/users/{ALICE}/calendar").status_code == 200
    assert time.monotonic() - started >= 0.15

    sim.fault(operation="graph.getCalendar", hang=True, hangMs=200, count=1)
    assert error(graph.get(f"/users/{ALICE}/calendar"))[:2] == (504, "UnknownError")

    sim.fault(operation="graph.getCalendar", drop=True, count=1)
    with pytest.raises(httpx.TransportError):
        graph.get(f"/users/{ALICE}/calendar")
    assert graph_entries(sim, "graph.getCalendar")[-1]["responseCode"] == "Dropped"
    assert graph.get(f"/users/{ALICE}/calendar").status_code == 200


def test_the_token_endpoint_takes_faults_too(sim: SimClient) -> None:
    sim.fault(operation="graph.token", httpStatus=503, retryAfterSeconds=1, count=1)
    with pytest.raises(MsalServiceError, match="503"):  # msal raises on a 5xx from Entra
        sim.msal_app().acquire_token_for_client(scopes=[GRAPH_SCOPE])
    sim.fault(operation="graph.token", httpStatus=429, retryAfterSeconds=1, count=1)
    result = sim.msal_app().acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert result["error"] == "temporarily_unavailable" and result["error_codes"] == [90055]
    assert "access_token" in sim.msal_app().acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert [e["httpStatus"] for e in graph_entries(sim, "graph.token")] == [503, 429, 200]


def test_more_concurrent_requests_on_one_mailbox_than_its_limit_are_throttled(sim: SimClient, graph_token: str) -> None:
    sim.limits(graph_mailbox_concurrency=2)
    sim.fault(operation="graph.listEvents", latencyMs=400)
    results: dict[str, list[httpx.Response]] = {ALICE: [], BOB: []}

    def call(mailbox: str) -> None:
        with graph_client(sim.running, graph_token) as client:
            results[mailbox].append(client.get(f"/users/{mailbox}/events"))

    threads = [threading.Thread(target=call, args=(ALICE,)) for _ in range(4)]
    threads.append(threading.Thread(target=call, args=(BOB,)))
    for thread in threads:
        thread.start()
        time.sleep(0.03)  # the first two arrive (and hold their places) before the others
    for thread in threads:
        thread.join()

    statuses = sorted(r.status_code for r in results[ALICE])
    assert statuses == [200, 200, 429, 429]
    throttled = next(r for r in results[ALICE] if r.status_code == 429)
    assert error(throttled) == (429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
    assert throttled.headers["Retry-After"] == "1"
    assert [r.status_code for r in results[BOB]] == [200]  # the limit is per mailbox
    codes = [e["responseCode"] for e in graph_entries(sim, "graph.listEvents") if e["mailbox"] == ALICE]
    assert sorted(codes) == ["ApplicationThrottled", "ApplicationThrottled", "NoError", "NoError"]
    assert sim.limits()["graphMailboxConcurrency"] == 2
    sim.reset()
    assert sim.limits()["graphMailboxConcurrency"] == 4


@pytest.mark.parametrize(("status", "reason"), [(429, "Too Many Requests"), (504, "Gateway Timeout")])
def test_ews_answers_the_new_statuses_too(sim: SimClient, status: int, reason: str) -> None:
    sim.fault(operation="GetFolder", httpStatus=status, retryAfterSeconds=3, count=1)
    response = requests.post(
        sim.ews_url,
        data=RAW_GET_FOLDER.encode(),
        auth=(SERVICE_ACCOUNT, SERVICE_PASSWORD),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=5,
    )
    assert (response.status_code, response.headers["Retry-After"], response.text) == (status, "3", reason)


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"operation": "CreateItem", "responseCode": "TooManyRequests"}, "responseCode must be an EWS error code"),
        ({"operation": "graph.createEvent", "responseCode": "not a code"}, "responseCode must be"),
        ({"httpStatus": 429, "retryAfterSeconds": -1}, "retryAfterSeconds must be an integer"),
        ({"httpStatus": 418}, "httpStatus must be one of (401, 429, 500, 503, 504)"),
    ],
)
def test_bad_graph_fault_rules_are_refused(sim: SimClient, rule: dict[str, Any], problem: str) -> None:
    response = sim.http.post(f"{sim.url}/_sim/faults", json=rule, timeout=5)
    assert response.status_code == 400 and problem in response.json()["error"]

"""JSON batching: up to 20 requests, each answered on its own, through the same pipeline as single requests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ews_sim.testing import LIMITED_APP_ID, LIMITED_APP_SECRET, SimClient, graph_client
from tests.ews_sim.graph.support import ALICE, BOB, CAROL, error, event

JSON = {"Content-Type": "application/json"}


def batch(graph: httpx.Client, *requests: dict[str, Any]) -> httpx.Response:
    return graph.post("/$batch", json={"requests": list(requests)})


def by_id(response: httpx.Response) -> dict[str, dict[str, Any]]:
    assert response.status_code == 200, response.text
    return {r["id"]: r for r in response.json()["responses"]}


def test_each_request_of_a_batch_is_answered_with_its_own_status_headers_and_body(
    sim: SimClient, graph: httpx.Client
) -> None:
    answers = by_id(
        batch(
            graph,
            {"id": "1", "method": "POST", "url": f"/users/{ALICE}/events", "body": event(subject="A"), "headers": JSON},
            {"id": "2", "method": "POST", "url": f"users/{BOB}/events", "body": event(subject="B"), "headers": JSON},
            {"id": "3", "method": "GET", "url": "/users/nobody@contoso.com/events"},
            {
                "id": "4",
                "method": "POST",
                "url": f"/users/{ALICE}/calendar/getSchedule",
                "headers": JSON | {"Prefer": 'outlook.timezone="W. Europe Standard Time"'},
                "body": {
                    "schedules": [ALICE, BOB],
                    "startTime": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
                    "endTime": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
                },
            },
            {
                "id": "5",
                "method": "GET",
                "url": f"https://graph.microsoft.com/v1.0/users/{ALICE}/events?$select=subject",
            },
        )
    )
    assert {k: v["status"] for k, v in answers.items()} == {"1": 201, "2": 201, "3": 404, "4": 200, "5": 200}
    assert answers["1"]["body"]["subject"] == "A" and answers["1"]["headers"]["ETag"].startswith('W/"')
    assert answers["3"]["body"]["error"]["code"] == "ErrorInvalidUser"
    schedules = answers["4"]["body"]["value"]
    assert [s["availabilityView"] for s in schedules] == ["22", "22"]
    assert schedules[0]["scheduleItems"][0]["start"]["timeZone"] == "W. Europe Standard Time"
    assert [e["subject"] for e in answers["5"]["body"]["value"]] == ["A"]
    # Every sub-request is logged as a request of its own.
    operations = [
        e["operation"] for e in sim.log() if e["operation"].startswith("graph.") and e["operation"] != "graph.token"
    ]
    assert operations == [
        "graph.createEvent",
        "graph.createEvent",
        "graph.listEvents",
        "graph.getSchedule",
        "graph.listEvents",
        "graph.batch",
    ]


def test_more_than_20_requests_are_refused_whole(sim: SimClient, graph: httpx.Client) -> None:
    requests = [
        {"id": str(n), "method": "POST", "url": f"/users/{ALICE}/events", "body": event(), "headers": JSON}
        for n in range(21)
    ]
    assert error(batch(graph, *requests))[:2] == (400, "BadRequest")
    assert sim.calendar(ALICE) == []
    assert by_id(batch(graph, *requests[:20]))["19"]["status"] == 201


@pytest.mark.parametrize(
    "body",
    [
        {"requests": "x"},
        {"requests": []},
        {"requests": [{"id": "1", "method": "GET"}]},
        {"requests": [{"id": "1", "method": "GET", "url": "/a"}, {"id": "1", "method": "GET", "url": "/b"}]},
        {"requests": [{"id": "1", "method": "GET", "url": "/a", "dependsOn": ["2"]}]},
        {"requests": [{"id": "1", "method": "POST", "url": f"/users/{ALICE}/events", "body": {}}]},
    ],
)
def test_malformed_batches_are_refused(graph: httpx.Client, body: dict[str, Any]) -> None:
    assert error(graph.post("/$batch", json=body))[:2] == (400, "BadRequest")


def test_depends_on_runs_in_order_and_a_failed_dependency_stops_its_dependants(
    sim: SimClient, graph: httpx.Client
) -> None:
    answers = by_id(
        batch(
            graph,
            {
                "id": "a",
                "method": "POST",
                "url": f"/users/{ALICE}/events",
                "body": event(subject="first"),
                "headers": JSON,
            },
            {"id": "b", "method": "GET", "url": "/users/nobody@contoso.com/events", "dependsOn": ["a"]},
            {
                "id": "c",
                "method": "POST",
                "url": f"/users/{ALICE}/events",
                "body": event(),
                "headers": JSON,
                "dependsOn": ["b"],
            },
            {"id": "d", "method": "GET", "url": f"/users/{ALICE}/events", "dependsOn": ["a"]},
        )
    )
    assert [answers[k]["status"] for k in "abcd"] == [201, 404, 424, 200]
    assert answers["c"]["body"]["error"]["code"] == "FailedDependency"
    assert [e["subject"] for e in answers["d"]["body"]["value"]] == ["first"]
    assert len(sim.calendar(ALICE)) == 1


def test_sub_requests_carry_the_batchs_token_and_its_access_policy(sim: SimClient) -> None:
    with graph_client(sim.running, sim.graph_token(LIMITED_APP_ID, LIMITED_APP_SECRET)) as limited:
        answers = by_id(
            batch(
                limited,
                {"id": "1", "method": "GET", "url": f"/users/{ALICE}/events"},
                {"id": "2", "method": "GET", "url": f"/users/{CAROL}/events"},
                {"id": "3", "method": "POST", "url": "/$batch", "body": {"requests": []}, "headers": JSON},
            )
        )
    assert [answers[k]["status"] for k in "123"] == [200, 403, 400]
    # Without a token, the batch itself is refused.
    no_token = httpx.post(f"{sim.tls_url}/v1.0/$batch", json={"requests": []}, verify=sim.verify)
    assert error(no_token)[:2] == (401, "InvalidAuthenticationToken")

"""The Graph pipeline: who may reach which mailbox, Graph's error shape for refusals, routing and the request log."""

from __future__ import annotations

import httpx
import pytest

from ews_sim.testing import (
    LIMITED_APP_ID,
    LIMITED_APP_SECRET,
    NO_CONSENT_APP_ID,
    NO_CONSENT_APP_SECRET,
    ON_PREMISES_MAILBOX,
    SimClient,
    graph_client,
)
from tests.ews_sim.graph.support import ALICE, BOB, CAROL, error, event

RAOP = "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."


def test_an_access_policy_limits_an_app_to_its_mailboxes(sim: SimClient) -> None:
    with graph_client(sim.running, sim.graph_token(LIMITED_APP_ID, LIMITED_APP_SECRET)) as limited:
        assert limited.get(f"/users/{ALICE}/events").status_code == 200
        assert limited.post(f"/users/{BOB}/events", json=event()).status_code == 201
        for call in (
            lambda: limited.get(f"/users/{CAROL}/events"),
            lambda: limited.post(f"/users/{CAROL}/events", json=event()),
            lambda: limited.post(f"/users/{CAROL}/calendar/getSchedule", json={"schedules": [ALICE]}),
        ):
            assert error(call()) == (403, "ErrorAccessDenied", RAOP)
    assert sim.calendar(CAROL) == []


def test_an_app_without_consented_permissions_is_denied_everything(sim: SimClient) -> None:
    with graph_client(sim.running, sim.graph_token(NO_CONSENT_APP_ID, NO_CONSENT_APP_SECRET)) as app:
        for response in (app.get(f"/users/{ALICE}/events"), app.post(f"/users/{ALICE}/events", json=event())):
            assert error(response) == (403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    assert sim.calendar(ALICE) == []


def test_a_read_only_app_reads_but_does_not_write(sim: SimClient) -> None:
    sim.add_app("reader", client_secret="r", roles=["Calendars.Read"])
    with graph_client(sim.running, sim.graph_token("reader", "r")) as reader:
        assert reader.get(f"/users/{ALICE}/events").status_code == 200
        assert error(reader.post(f"/users/{ALICE}/events", json=event()))[:2] == (403, "ErrorAccessDenied")


def test_an_on_premises_mailbox_is_not_enabled_for_rest(graph: httpx.Client) -> None:
    response = graph.get(f"/users/{ON_PREMISES_MAILBOX}/events")
    assert error(response) == (
        404,
        "MailboxNotEnabledForRESTAPI",
        "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    )


def test_an_unknown_user_is_error_invalid_user(graph: httpx.Client) -> None:
    for response in (
        graph.get("/users/nobody@contoso.com/events"),
        graph.post("/users/Nobody@Contoso.com/events", json=event()),
    ):
        code, message = error(response)[1:]
        assert response.status_code == 404 and code == "ErrorInvalidUser"
        assert message.startswith("The requested user '") and message.lower().endswith(
            "'nobody@contoso.com' is invalid."
        )


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/me/events", 400, "BadRequest"),
        ("GET", f"/users/{ALICE}/mailFolders", 400, "BadRequest"),
        ("PUT", f"/users/{ALICE}/events", 405, "BadRequest"),
        ("GET", "/groups", 400, "BadRequest"),
    ],
)
def test_paths_graph_does_not_serve_here(graph: httpx.Client, method: str, path: str, status: int, code: str) -> None:
    assert error(graph.request(method, path))[:2] == (status, code)


def test_malformed_json_is_a_bad_request(graph: httpx.Client) -> None:
    response = graph.post(f"/users/{ALICE}/events", content=b"{not json", headers={"Content-Type": "application/json"})
    assert error(response)[:2] == (400, "BadRequest")


def test_every_error_carries_graphs_inner_error_with_the_clients_request_id(graph: httpx.Client) -> None:
    response = graph.get("/users/nobody@contoso.com/events", headers={"client-request-id": "my-correlation-id"})
    inner = response.json()["error"]["innerError"]
    assert inner["client-request-id"] == "my-correlation-id" and inner["request-id"] == response.headers["request-id"]
    assert response.headers["client-request-id"] == "my-correlation-id"
    assert len(inner["date"]) == 19 and inner["date"][10] == "T"


def test_every_graph_request_is_logged_with_operation_mailbox_status_and_code(
    sim: SimClient, graph: httpx.Client
) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event()).json()
    graph.get(f"/users/{ALICE}/events/{created['id']}")
    graph.get("/users/nobody@contoso.com/events")
    entries = [e for e in sim.log() if e["operation"].startswith("graph.") and e["operation"] != "graph.token"]
    assert [(e["operation"], e["mailbox"], e["httpStatus"], e["responseCode"]) for e in entries] == [
        ("graph.createEvent", ALICE, 201, "NoError"),
        ("graph.getEvent", ALICE, 200, "NoError"),
        ("graph.listEvents", "nobody@contoso.com", 404, "ErrorInvalidUser"),
    ]
    assert all(e["account"] for e in entries) and all(e["durationMs"] >= 0 for e in entries)


def test_query_options_may_leave_out_the_dollar(graph: httpx.Client) -> None:
    for n in range(3):
        graph.post(f"/users/{ALICE}/events", json=event(subject=f"E{n}"))
    assert len(graph.get(f"/users/{ALICE}/events", params={"top": "2"}).json()["value"]) == 2

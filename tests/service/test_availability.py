"""Availability through the real path: HTTP, the backend's free/busy requests, the simulator's calendars."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest

from ews_sim.testing import SimClient
from tests.support.stack import Stack

PATH = "/api/salesforce/scheduler/availability"
WINDOW = {"from": "2026-05-11T08:00:00Z", "to": "2026-05-12T08:00:00Z"}


def ask(service: Stack, entries: list[dict[str, Any]], token: str = "default", **params: Any) -> Any:
    return service.call("POST", PATH, token=token, json=entries, params={**WINDOW, **params})


def slots(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"timeMin": a, "timeMax": b} for a, b in pairs]


def availability_calls(service: Stack, sim: SimClient) -> list[dict[str, Any]]:
    return [e for e in sim.log() if e["operation"] == service.dialect.availability]


def test_busy_items_become_merged_clipped_slots(service: Stack, sim: SimClient) -> None:
    bob = "bob@contoso.com"
    sim.seed(bob, subject="crosses the start", start="2026-05-11T07:00:00Z", end="2026-05-11T09:00:00Z")
    sim.seed(bob, subject="overlaps", start="2026-05-11T10:00:00Z", end="2026-05-11T11:30:00Z")
    sim.seed(bob, subject="overlapped", start="2026-05-11T11:00:00Z", end="2026-05-11T12:00:00Z", freeBusy="Tentative")
    sim.seed(bob, subject="touches", start="2026-05-11T12:00:00Z", end="2026-05-11T12:30:00Z", freeBusy="OOF")
    sim.seed(bob, subject="free", start="2026-05-11T14:00:00Z", end="2026-05-11T15:00:00Z", freeBusy="Free")
    sim.seed(
        bob,
        subject="elsewhere",
        start="2026-05-11T15:00:00+02:00",
        end="2026-05-11T16:00:00+02:00",
        freeBusy="WorkingElsewhere",
    )
    sim.seed(bob, subject="all day", start="2026-05-12T00:00:00Z", end="2026-05-13T00:00:00Z", isAllDay=True)
    sim.seed(bob, subject="outside", start="2026-05-13T09:00:00Z", end="2026-05-13T10:00:00Z")
    response = ask(service, [{"email": "Bob@Contoso.com", "serviceResourceId": "123", "isOrganizer": "true"}])
    assert response.status_code == 200, response.text
    assert response.json() == [
        {
            "email": "Bob@Contoso.com",
            "serviceResourceId": "123",
            "errorCode": "NoError",
            "unavailableTimeslots": slots(
                ("2026-05-11T08:00:00Z", "2026-05-11T09:00:00Z"),  # clipped to the window
                ("2026-05-11T10:00:00Z", "2026-05-11T12:30:00Z"),  # overlapping and touching, merged
                ("2026-05-11T13:00:00Z", "2026-05-11T14:00:00Z"),  # written at +02:00
                ("2026-05-12T00:00:00Z", "2026-05-12T08:00:00Z"),  # all day, clipped
            ),
        }
    ]


def test_the_tenant_decides_which_states_are_busy(service: Stack, sim: SimClient) -> None:
    sim.seed("alice@contoso.com", subject="b", start="2026-05-11T09:00:00Z", end="2026-05-11T10:00:00Z")
    sim.seed(
        "alice@contoso.com", subject="t", start="2026-05-11T11:00:00Z", end="2026-05-11T12:00:00Z", freeBusy="Tentative"
    )
    [mine] = ask(service, [{"email": "alice@contoso.com"}]).json()
    assert len(mine["unavailableTimeslots"]) == 2 and "serviceResourceId" not in mine
    [theirs] = ask(service, [{"email": "alice@contoso.com"}], token="other").json()  # tenant "other": Busy only
    assert theirs["unavailableTimeslots"] == slots(("2026-05-11T09:00:00Z", "2026-05-11T10:00:00Z"))
    accounts = {e["account"] for e in availability_calls(service, sim)}
    # Each tenant asked its own Exchange connection (service account), never the other's.
    assert accounts == {service.dialect.account("full"), service.dialect.account("limited")}


@pytest.mark.parametrize("count", [1, 20, 21, 100, 101, 250])
def test_batches_in_request_order(service: Stack, sim: SimClient, count: int) -> None:
    requests = math.ceil(count / service.dialect.schedules_per_request)
    emails = [f"user{n:03d}@fabrikam.com" for n in range(count)]
    sim.seed(emails[-1], subject="x", start="2026-05-11T09:00:00Z", end="2026-05-11T10:00:00Z")
    response = ask(service, [{"email": e, "serviceResourceId": str(n)} for n, e in enumerate(emails)])
    body = response.json()
    assert [e["email"] for e in body] == emails and [e["serviceResourceId"] for e in body] == [
        str(n) for n in range(count)
    ]
    assert all(e["errorCode"] == "NoError" for e in body)
    assert [len(e["unavailableTimeslots"]) for e in body] == [0] * (count - 1) + [1]
    assert len(availability_calls(service, sim)) == requests
    assert [e["operation"] for e in sim.log()].count("GetServerTimeZones") <= 1  # cached per tenant and year


def test_a_100_day_window_is_split_in_requests_of_the_longest_window(service: Stack, sim: SimClient) -> None:
    sim.seed("carol@contoso.com", subject="early", start="2026-01-02T09:00:00Z", end="2026-01-02T10:00:00Z")
    sim.seed("carol@contoso.com", subject="late", start="2026-04-09T09:00:00Z", end="2026-04-09T10:00:00Z")
    # An item across a split point comes back from both requests and is merged into one slot.
    sim.seed("carol@contoso.com", subject="across", start="2026-02-11T23:00:00Z", end="2026-02-12T01:00:00Z")
    entries = [{"email": "carol@contoso.com"}] + [{"email": f"x{n}@fabrikam.com"} for n in range(99)]
    response = service.call(
        "POST", PATH, json=entries, params={"from": "2026-01-01T00:00:00Z", "to": "2026-04-11T00:00:00Z"}
    )
    carol = response.json()[0]
    assert carol["unavailableTimeslots"] == slots(
        ("2026-01-02T09:00:00Z", "2026-01-02T10:00:00Z"),
        ("2026-02-11T23:00:00Z", "2026-02-12T01:00:00Z"),
        ("2026-04-09T09:00:00Z", "2026-04-09T10:00:00Z"),
    )
    windows = math.ceil(100 / service.dialect.window_days)  # EWS: 42 + 42 + 16 days; Graph: 61 + 39
    assert len(availability_calls(service, sim)) == windows * math.ceil(100 / service.dialect.schedules_per_request)


def test_duplicates_are_looked_up_once_and_echoed_each_time(service: Stack, sim: SimClient) -> None:
    sim.seed("dave@contoso.com", subject="x", start="2026-05-11T09:00:00Z", end="2026-05-11T10:00:00Z")
    body = ask(
        service,
        [
            {"email": "dave@contoso.com", "serviceResourceId": "a"},
            {"email": "DAVE@contoso.com", "serviceResourceId": "b"},
        ],
    ).json()
    assert [(e["email"], e["serviceResourceId"]) for e in body] == [
        ("dave@contoso.com", "a"),
        ("DAVE@contoso.com", "b"),
    ]
    assert body[0]["unavailableTimeslots"] == body[1]["unavailableTimeslots"] != []
    [call] = availability_calls(service, sim)
    assert len(call["responseCodes"]) <= 1


def test_an_unknown_mailbox_fails_closed_alone(service: Stack, sim: SimClient) -> None:
    sim.seed("bob@contoso.com", subject="x", start="2026-05-11T09:00:00Z", end="2026-05-11T10:00:00Z")
    entries = [{"email": "bob@contoso.com"}, {"email": "ghost@contoso.com"}]
    ghost_closed = ask(service, entries).json()[1]
    assert ghost_closed["errorCode"] == "ErrorMailRecipientNotFound"
    assert ghost_closed["unavailableTimeslots"] == slots((WINDOW["from"], WINDOW["to"]))
    bob, ghost_open = ask(service, entries, onError="free").json()
    assert bob["errorCode"] == "NoError" and len(bob["unavailableTimeslots"]) == 1
    assert ghost_open["errorCode"] == "ErrorMailRecipientNotFound" and ghost_open["unavailableTimeslots"] == []


def test_a_late_mailbox_times_out_and_the_answer_is_still_in_time(service: Stack, sim: SimClient) -> None:
    # The late mailbox is alone in the second batch; the simulator holds that request past the deadline (3 s here).
    entries = [{"email": f"fast{n:03d}@fabrikam.com"} for n in range(100)] + [{"email": "slow@fabrikam.com"}]
    sim.fault(operation=service.dialect.availability, mailbox="slow@fabrikam.com", latencyMs=4000)
    started = time.monotonic()
    body = ask(service, entries).json()
    elapsed = time.monotonic() - started
    assert elapsed < 3.5, elapsed
    assert {e["errorCode"] for e in body[:100]} == {"NoError"}
    assert body[100]["errorCode"] == "ErrorTimeout"
    assert body[100]["unavailableTimeslots"] == slots((WINDOW["from"], WINDOW["to"]))
    # The abandoned request still finishes in the simulator; let it, so it is not logged in the next test.
    expected = math.ceil(101 / service.dialect.schedules_per_request)
    while len(availability_calls(service, sim)) < expected and time.monotonic() - started < 10:
        time.sleep(0.1)


def test_throttling_is_retried_with_the_servers_back_off(service: Stack, sim: SimClient) -> None:
    sim.fault(operation=service.dialect.availability, count=1, **service.dialect.throttle(500))
    body = ask(service, [{"email": "alice@contoso.com"}]).json()
    assert body[0]["errorCode"] == "NoError"
    first, second = availability_calls(service, sim)
    assert first["responseCode"] == service.dialect.throttled_code and second["responseCode"] == "NoError"
    waited = second["time"] - (first["time"] + first["durationMs"] / 1000)
    assert waited >= service.dialect.back_off_seconds(500) - 0.05


@pytest.mark.parametrize(
    ("params", "body", "field"),
    [
        ({"from": None}, [{"email": "a@contoso.com"}], "from"),
        ({"to": "tomorrow"}, [{"email": "a@contoso.com"}], "to"),
        ({"to": WINDOW["from"]}, [{"email": "a@contoso.com"}], "to"),
        ({"to": "2027-05-13T08:00:00Z"}, [{"email": "a@contoso.com"}], "to"),
        ({}, [{"email": f"u{n}@fabrikam.com"} for n in range(1001)], "body"),
        ({}, [{"email": ""}], "[0].email"),
        ({}, [{"email": "not-an-email"}], "[0].email"),
        ({}, [], "body"),
        ({}, {"email": "a@contoso.com"}, "body"),
    ],
)
def test_bad_requests_are_refused_before_any_exchange_call(
    service: Stack, sim: SimClient, params: dict[str, Any], body: Any, field: str
) -> None:
    query = {k: v for k, v in {**WINDOW, **params}.items() if v is not None}
    response = service.call("POST", PATH, json=body, params=query)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["errorCode"] == "ErrorInvalidRequest"
    assert any(d["field"].endswith(field) or d["field"] == field for d in error["details"]), error
    assert sim.log() == []


def test_availability_needs_its_scope(service: Stack, sim: SimClient) -> None:
    assert ask(service, [{"email": "alice@contoso.com"}], token="read").status_code == 200
    refused = ask(service, [{"email": "alice@contoso.com"}], token="write")
    assert refused.status_code == 403 and refused.json()["errorCode"] == "ErrorForbidden"
    assert ask(service, [{"email": "alice@contoso.com"}], token=None).status_code == 401

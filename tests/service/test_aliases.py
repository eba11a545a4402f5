"""Two addresses of one mailbox are one mailbox to the service: postbacks, meetings and availability through the
real path (HTTP, store, Celery workers, the simulator's directory over EWS ResolveNames or Graph), each address
echoed as the caller wrote it."""

from __future__ import annotations

import time
import uuid
from typing import Any

from ews_sim.testing import SimClient
from tests.service.test_availability import WINDOW, availability_calls
from tests.service.test_meeting import PATH as MEETING
from tests.service.test_meeting import meeting_body, organizer_items
from tests.service.test_postback import create_body, event_id, tagged
from tests.support.stack import TEST_SETTINGS, Stack

AVAILABILITY = "/api/salesforce/scheduler/availability"
DIRECTORY = {"ResolveNames", "graph.getCalendar", "graph.getUser"}  # how each backend asks for a mailbox's address


def person(sim: SimClient) -> tuple[str, str]:
    """A new mailbox and another address of it (the simulator is reset by every test; the service's cache is not)."""
    name = uuid.uuid4().hex[:8]
    primary, alias = f"dana.{name}@contoso.com", f"d.{name}@contoso.com"
    sim.add_mailboxes(primary, aliases={primary: [alias]})
    return primary, alias


def directory_calls(sim: SimClient) -> list[dict[str, Any]]:
    return [e for e in sim.log() if e["operation"] in DIRECTORY]


def test_a_postback_listing_an_alias_and_its_primary_writes_one_appointment(service: Stack, sim: SimClient) -> None:
    primary, alias = person(sim)
    eid = event_id()
    attendees = [{"email": alias, "isRequired": "true"}, {"email": primary.upper(), "isRequired": "true"}]
    body = create_body(eid, attendees=attendees)
    response = service.postback("POST", body)
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"email": "alice@contoso.com", "errorCode": "NoError"},
        {"email": alias, "errorCode": "NoError"},
        {"email": primary.upper(), "errorCode": "NoError"},
    ]
    [item] = tagged(sim, primary, eid)
    # Moved, then one of the two addresses dropped: still one item, moved, kept for the address still listed.
    moved = {k: v for k, v in body.items() if k not in ("id", "salesforceCorrelationId")}
    moved["startTime"] = "2020-10-17T10:00:00Z"
    response = service.postback("PUT", {"original": body, "new": moved})
    assert response.status_code == 200 and {r["errorCode"] for r in response.json()} == {"NoError"}, response.text
    [item] = tagged(sim, primary, eid)
    assert item["start"] == "2020-10-17T10:00:00Z"
    fewer = {**moved, "attendees": attendees[:1]}
    response = service.postback("PUT", {"original": {**body, **moved}, "new": fewer})
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"email": "alice@contoso.com", "errorCode": "NoError"},
        {"email": alias, "errorCode": "NoError"},
        {"email": primary.upper(), "errorCode": "NoError"},
    ]
    [kept] = tagged(sim, primary, eid)
    assert kept["itemId"] == item["itemId"]
    assert sim.schema_errors() == []


def test_a_meeting_invites_an_attendee_listed_under_two_addresses_once(service: Stack, sim: SimClient) -> None:
    primary, alias = person(sim)
    body = meeting_body(
        attendees=[
            {"email": alias, "isRequired": "false"},
            {"email": "carol@contoso.com", "isRequired": "true"},
            {"email": primary, "isRequired": "true"},
        ]
    )
    created = service.call("POST", MEETING, json=body)
    assert created.status_code == 200 and created.json()["errorCode"] == "NoError", created.text
    assert [m["kind"] for m in sim.messages(to=primary)] == ["request"]
    assert [m["kind"] for m in sim.messages(to="carol@contoso.com")] == ["request"]
    [item] = organizer_items(sim, body["id"])
    # The organizer's meeting lists the person once, required (as one of their addresses was).
    assert [(a["email"].lower(), a["isRequired"]) for a in item["attendees"]] == [
        (primary, True),
        ("carol@contoso.com", True),
    ]
    sim.respond(primary, "Accept", organizerItemId=item["itemId"])
    view = service.call("GET", MEETING, params={"id": body["id"], "organizerEmail": "alice@contoso.com"})
    assert view.status_code == 200, view.text
    answers = {a["email"]: a["response"] for a in view.json()["attendees"]}
    assert answers == {alias: "Accepted", "carol@contoso.com": "NoResponseReceived", primary: "Accepted"}
    # The same meeting again is no change: nothing sent again.
    again = service.call("PATCH", MEETING, json={"id": body["id"], "organizerEmail": "alice@contoso.com"})
    assert again.status_code == 200 and again.json()["errorCode"] == "NoError"
    assert len(sim.messages(to=primary)) == 1
    assert sim.schema_errors() == []


def test_availability_asks_for_a_mailbox_once_and_echoes_each_address(service: Stack, sim: SimClient) -> None:
    primary, alias = person(sim)
    sim.seed(primary, subject="busy", start="2026-05-11T09:00:00Z", end="2026-05-11T10:00:00Z")
    entries = [{"email": alias}, {"email": "ghost@contoso.com"}, {"email": primary.upper()}]
    response = service.call("POST", AVAILABILITY, json=entries, params=WINDOW)
    assert response.status_code == 200, response.text
    slot = [{"timeMin": "2026-05-11T09:00:00Z", "timeMax": "2026-05-11T10:00:00Z"}]
    assert [(a["email"], a["errorCode"], a["unavailableTimeslots"]) for a in response.json()] == [
        (alias, "NoError", slot),
        ("ghost@contoso.com", "ErrorMailRecipientNotFound", [{"timeMin": WINDOW["from"], "timeMax": WINDOW["to"]}]),
        (primary.upper(), "NoError", slot),
    ]
    [call] = availability_calls(service, sim)
    if service.dialect.name == "ews":  # one answer a mailbox asked: the mailbox once (not twice), and the ghost
        assert call["responseCodes"] == ["NoError", "ErrorMailRecipientNotFound"]


def test_a_resolved_address_is_reused_within_the_cache_time_and_asked_again_after(
    service: Stack, sim: SimClient
) -> None:
    _, alias = person(sim)
    ttl = float(TEST_SETTINGS["DOWNSYNC_ADDRESS_CACHE_SECONDS"])
    started = time.monotonic()
    first = service.call("POST", AVAILABILITY, json=[{"email": alias}], params=WINDOW)
    assert first.status_code == 200 and first.json()[0]["errorCode"] == "NoError", first.text
    asked = len(directory_calls(sim))
    assert asked >= 1
    second = service.call("POST", AVAILABILITY, json=[{"email": alias}], params=WINDOW)
    assert second.status_code == 200 and second.json()[0]["errorCode"] == "NoError"
    if time.monotonic() - started < ttl - 1:  # a machine this slow says nothing of the cache
        assert len(directory_calls(sim)) == asked
    time.sleep(max(0.0, started + ttl + 0.5 - time.monotonic()))
    third = service.call("POST", AVAILABILITY, json=[{"email": alias}], params=WINDOW)
    assert third.status_code == 200 and third.json()[0]["errorCode"] == "NoError"
    assert len(directory_calls(sim)) > asked

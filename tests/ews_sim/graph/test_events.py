"""Events through Graph (httpx over HTTPS), and the same events through EWS (the real exchangelib): one organisation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from exchangelib import UTC, Attendee, CalendarItem, EWSDateTime, Mailbox
from exchangelib.errors import ErrorIrresolvableConflict
from exchangelib.extended_properties import ExtendedProperty

from ews_sim.graph.json import ews_id, rest_id
from ews_sim.testing import TEAMS_DISABLED_MAILBOX, SimClient, ews_account
from tests.ews_sim.graph.support import ALICE, BOB, CAROL, DAVE, EVENT_ID, KIND, PROP_SET, error, event, tagged


class GraphEventId(ExtendedProperty):
    property_set_id = PROP_SET
    property_name = "DownsyncEventId"
    property_type = "String"


@pytest.fixture
def registered() -> Iterator[None]:
    CalendarItem.register("graph_test_event_id", GraphEventId)
    yield
    CalendarItem.deregister("graph_test_event_id")


def messages(sim: SimClient) -> list[tuple[str, str]]:
    return [(m["kind"], m["to"]) for m in sim.messages()]


# --- create ---------------------------------------------------------------------------------------------


def test_an_event_without_attendees_is_an_appointment_and_nobody_is_emailed(
    sim: SimClient, graph: httpx.Client
) -> None:
    response = graph.post(f"/users/{ALICE}/events", json=tagged("SF-1", body={"contentType": "text", "content": "Hi"}))
    assert response.status_code == 201
    created = response.json()
    assert created["@odata.etag"] == f'W/"{created["changeKey"]}"' and created["isOrganizer"] is True
    assert (created["start"], created["end"]) == (
        {"dateTime": "2030-01-07T09:00:00.0000000", "timeZone": "UTC"},
        {"dateTime": "2030-01-07T10:00:00.0000000", "timeZone": "UTC"},
    )
    assert created["attendees"] == [] and created["responseStatus"]["response"] == "organizer"
    assert created["body"] == {"contentType": "text", "content": "Hi"} and created["showAs"] == "busy"
    assert "transactionId" not in created  # only when the client set one
    [item] = sim.calendar(ALICE)
    assert item["itemId"] == ews_id(created["id"]) and created["id"] == rest_id(item["itemId"])
    assert item["changeKey"] == created["changeKey"] and item["uid"] == created["iCalUId"]
    assert item["isMeeting"] is False and item["extendedProperties"] == {f"{PROP_SET}:DownsyncEventId": "SF-1"}
    assert sim.messages() == []


def test_an_event_with_attendees_is_a_meeting_whose_invitations_go_out_as_through_ews(
    sim: SimClient, graph: httpx.Client
) -> None:
    body = event(attendees=[BOB, "guest@example.org"])
    body["attendees"].append({"emailAddress": {"address": CAROL, "name": "Carol"}, "type": "optional"})
    created = graph.post(f"/users/{ALICE}/events", json=body).json()

    assert messages(sim) == [("request", BOB), ("request", "guest@example.org"), ("request", CAROL)]
    assert [(a["emailAddress"]["address"], a["type"], a["status"]["response"]) for a in created["attendees"]] == [
        (BOB, "required", "none"),
        ("guest@example.org", "required", "none"),
        (CAROL, "optional", "none"),
    ]
    [copy] = sim.calendar(BOB)
    assert copy["uid"] == created["iCalUId"] and copy["freeBusy"] == "Tentative"
    bobs = graph.get(f"/users/{BOB}/events").json()["value"][0]
    assert bobs["isOrganizer"] is False and bobs["responseStatus"]["response"] == "notResponded"
    assert bobs["organizer"]["emailAddress"]["address"] == ALICE and bobs["showAs"] == "tentative"
    # exchangelib sees the organizer's item as a sent meeting.
    [item] = list(ews_account(sim.ews_url, ALICE).calendar.all())
    assert item.is_meeting and item.meeting_request_was_sent and item.subject == "Graph test"


def test_a_repeated_transaction_id_returns_the_first_event_and_creates_nothing(
    sim: SimClient, graph: httpx.Client
) -> None:
    body = event(transactionId="tx-7f2c", attendees=[BOB])
    first = graph.post(f"/users/{ALICE}/events", json=body)
    again = graph.post(f"/users/{ALICE}/events", json=body | {"subject": "changed on retry"})
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["id"] == first.json()["id"] and again.json()["subject"] == "Graph test"
    assert again.json()["transactionId"] == "tx-7f2c"
    assert len(sim.calendar(ALICE)) == 1 and messages(sim) == [("request", BOB)]
    # The key belongs to the mailbox: another mailbox may use it for its own event.
    assert graph.post(f"/users/{CAROL}/events", json=body).json()["id"] != first.json()["id"]
    # Once set, it cannot change.
    patched = graph.patch(f"/users/{ALICE}/events/{first.json()['id']}", json={"transactionId": "other"})
    assert error(patched)[:2] == (400, "ErrorInvalidRequest")


@pytest.mark.parametrize(
    ("zone", "local", "utc"),
    [
        ("Pacific Standard Time", "2030-07-01T09:00:00", "2030-07-01T16:00:00Z"),
        ("Europe/Paris", "2030-01-07T09:00:00", "2030-01-07T08:00:00Z"),
        ("UTC", "2030-01-07T09:00:00.0000000", "2030-01-07T09:00:00Z"),
    ],
)
def test_times_in_windows_iana_and_utc_zones(
    sim: SimClient, graph: httpx.Client, zone: str, local: str, utc: str
) -> None:
    body = event(start=local[:19], zone=zone)
    body["start"]["dateTime"] = local
    created = graph.post(f"/users/{ALICE}/events", json=body).json()
    [item] = sim.calendar(ALICE)
    assert item["start"] == utc
    expected_zone = {"Europe/Paris": "Romance Standard Time"}.get(zone, zone)
    assert created["originalStartTimeZone"] == expected_zone
    # The event's zone is what EWS reports as StartTimeZone.
    [ews_item] = list(ews_account(sim.ews_url, ALICE).calendar.all())
    assert ews_item._start_timezone.ms_id == expected_zone


def test_prefer_outlook_timezone_writes_times_in_that_zone(graph: httpx.Client) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event()).json()
    shown = graph.get(
        f"/users/{ALICE}/events/{created['id']}", headers={"Prefer": 'outlook.timezone="Tokyo Standard Time"'}
    )
    assert shown.json()["start"] == {"dateTime": "2030-01-07T18:00:00.0000000", "timeZone": "Tokyo Standard Time"}
    assert shown.headers["Preference-Applied"] == 'outlook.timezone="Tokyo Standard Time"'


def test_an_unknown_time_zone_is_refused(sim: SimClient, graph: httpx.Client) -> None:
    response = graph.post(f"/users/{ALICE}/events", json=event(zone="Mars/Olympus_Mons"))
    assert error(response)[:2] == (400, "TimeZoneNotSupportedException")
    assert sim.calendar(ALICE) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"subject": "no times"}, "ErrorInvalidRequest"),
        (event(minutes=-30), "ErrorCalendarEndDateIsEarlierThanStartDate"),
        (event(attendees=[]) | {"attendees": [{"emailAddress": {"name": "no address"}}]}, "ErrorInvalidRecipients"),
        # A recurrence without its range (Graph answers an invalid recurrence this way).
        (event(recurrence={"pattern": {"type": "daily", "interval": 1}}), "ErrorPropertyValidationFailure"),
    ],
)
def test_events_graph_cannot_store_are_refused(
    sim: SimClient, graph: httpx.Client, body: dict[str, Any], code: str
) -> None:
    assert error(graph.post(f"/users/{ALICE}/events", json=body))[:2] == (400, code)
    assert sim.calendar(ALICE) == [] and sim.messages() == []


# --- read ---------------------------------------------------------------------------------------------------


def test_filter_on_an_extended_property_matches_exactly_and_ignoring_case(sim: SimClient, graph: httpx.Client) -> None:
    for value in ("SF-1", "SF-2", "sf-1x"):
        graph.post(f"/users/{ALICE}/events", json=tagged(value, subject=value))
    graph.post(f"/users/{ALICE}/events", json=event(subject="untagged"))

    def subjects(value: str, id_form: str = EVENT_ID) -> list[str]:
        flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{id_form}' and ep/value eq '{value}')"
        response = graph.get(f"/users/{ALICE}/events", params={"$filter": flt})
        assert response.status_code == 200, response.text
        return sorted(e["subject"] for e in response.json()["value"])

    assert subjects("SF-1") == ["SF-1"]
    assert subjects("sf-1") == ["SF-1"]  # Exchange compares strings ignoring case
    assert subjects("SF-3") == []
    assert subjects("SF-2", EVENT_ID.replace(PROP_SET, PROP_SET.upper())) == ["SF-2"]
    # Another property of the same set is another property.
    assert subjects("SF-1", KIND) == []


def test_filter_forms_graph_refuses(graph: httpx.Client) -> None:
    def refused(flt: str) -> tuple[int, str]:
        return error(graph.get(f"/users/{ALICE}/events", params={"$filter": flt}))[:2]

    assert refused("singleValueExtendedProperties/Any(ep: ep/value eq 'x')") == (400, "ErrorInvalidUrlQueryFilter")
    assert refused(f"singleValueExtendedProperties/Any(ep: ep/id eq '{EVENT_ID}')") == (
        400,
        "ErrorInvalidUrlQueryFilter",
    )
    assert refused("colour eq 'red'") == (400, "BadRequest")
    assert refused("subject eq") == (400, "BadRequest")
    assert refused("singleValueExtendedProperties/Any(ep: ep/id eq 'Strin {x} Name Y' and ep/value eq 'v')") == (
        400,
        "ErrorInvalidExtendedProperty",
    )


def test_filter_on_ordinary_properties(graph: httpx.Client) -> None:
    graph.post(f"/users/{ALICE}/events", json=event(subject="Early call", start="2030-01-07T07:00:00"))
    graph.post(f"/users/{ALICE}/events", json=event(subject="Late call", start="2030-01-07T17:00:00", showAs="free"))

    def subjects(flt: str) -> list[str]:
        return sorted(
            e["subject"] for e in graph.get(f"/users/{ALICE}/events", params={"$filter": flt}).json()["value"]
        )

    assert subjects("start/dateTime ge '2030-01-07T12:00:00'") == ["Late call"]
    assert subjects("showAs eq 'busy' and startswith(subject, 'early')") == ["Early call"]
    assert subjects("not (showAs eq 'busy') or subject eq 'Nope'") == ["Late call"]


def test_select_top_paging_and_expand(sim: SimClient, graph: httpx.Client) -> None:
    for n in range(23):
        graph.post(f"/users/{ALICE}/events", json=tagged(f"SF-{n}", subject=f"E{n:02d}"))
    expand = f"singleValueExtendedProperties($filter=id eq '{EVENT_ID}' or id eq '{KIND}')"
    first = graph.get(f"/users/{ALICE}/events", params={"$select": "subject,start", "$expand": expand}).json()
    assert len(first["value"]) == 10  # Graph's default page
    assert set(first["value"][0]) == {"@odata.etag", "id", "subject", "start", "singleValueExtendedProperties"}
    assert first["value"][0]["singleValueExtendedProperties"] == [{"id": EVENT_ID, "value": "SF-0"}]
    seen = [e["subject"] for e in first["value"]]
    link = first["@odata.nextLink"]
    assert link.startswith(f"{sim.tls_url}/v1.0/users/")
    while link:
        page = graph.get(link).json()  # the link is absolute and carries every option
        assert all(set(e) >= {"subject", "singleValueExtendedProperties"} and "end" not in e for e in page["value"])
        seen += [e["subject"] for e in page["value"]]
        link = page.get("@odata.nextLink")
    assert seen == [f"E{n:02d}" for n in range(23)]

    top = graph.get(f"/users/{ALICE}/events", params={"$top": "5", "$orderby": "subject desc"}).json()
    assert [e["subject"] for e in top["value"]] == ["E22", "E21", "E20", "E19", "E18"]
    assert error(graph.get(f"/users/{ALICE}/events", params={"$select": "colour"}))[:2] == (
        400,
        "RequestBroker--ParseUri",
    )


def test_calendar_view_lists_what_overlaps_the_window(graph: httpx.Client) -> None:
    for hour in (8, 10, 12):
        graph.post(f"/users/{ALICE}/events", json=event(subject=f"at {hour}", start=f"2030-01-07T{hour:02d}:00:00"))
    view = graph.get(
        f"/users/{ALICE}/calendarView",
        params={"startDateTime": "2030-01-07T08:30:00Z", "endDateTime": "2030-01-07T11:00:00Z"},
    )
    assert [e["subject"] for e in view.json()["value"]] == ["at 8", "at 10"]
    assert error(graph.get(f"/users/{ALICE}/calendarView"))[:2] == (400, "ErrorInvalidParameter")


def test_unknown_and_malformed_event_ids(graph: httpx.Client) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event()).json()
    assert error(graph.get(f"/users/{BOB}/events/{created['id']}"))[:2] == (404, "ErrorItemNotFound")
    assert error(graph.get(f"/users/{ALICE}/events/not*an*id"))[:2] == (400, "ErrorInvalidIdMalformed")


# --- one organisation: EWS and Graph -------------------------------------------------------------------------


def test_an_event_written_through_graph_is_read_through_ews(
    sim: SimClient, graph: httpx.Client, registered: None
) -> None:
    created = graph.post(
        f"/users/{ALICE}/events", json=tagged("SF-9", location={"displayName": "Room 4"}, showAs="oof")
    ).json()
    alice = ews_account(sim.ews_url, ALICE)
    [item] = list(alice.calendar.filter(graph_test_event_id="SF-9"))
    assert item.id == ews_id(created["id"]) and item.changekey == created["changeKey"]
    assert (item.subject, item.location, item.legacy_free_busy_status) == ("Graph test", "Room 4", "OOF")
    assert item.start == EWSDateTime(2030, 1, 7, 9, 0, tzinfo=UTC)


def test_an_event_written_through_ews_is_read_and_updated_through_graph(
    sim: SimClient, graph: httpx.Client, registered: None
) -> None:
    alice = ews_account(sim.ews_url, ALICE)
    start = EWSDateTime(2030, 1, 7, 9, 0, tzinfo=UTC)
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="From EWS",
        start=start,
        end=start + dt.timedelta(hours=1),
        graph_test_event_id="SF-EWS",
        required_attendees=[Attendee(mailbox=Mailbox(email_address=BOB))],
    )
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{EVENT_ID}' and ep/value eq 'sf-ews')"
    [found] = graph.get(f"/users/{ALICE}/events", params={"$filter": flt}).json()["value"]
    assert found["id"] == rest_id(item.id) and found["changeKey"] == item.changekey
    assert [a["emailAddress"]["address"] for a in found["attendees"]] == [BOB]

    patched = graph.patch(
        f"/users/{ALICE}/events/{found['id']}", json={"subject": "Renamed"}, headers={"If-Match": found["@odata.etag"]}
    )
    assert patched.status_code == 200 and patched.json()["changeKey"] != item.changekey
    # exchangelib's change key is now stale: a NeverOverwrite update fails as Exchange's would.
    item.subject = "Lost update"
    with pytest.raises(ErrorIrresolvableConflict):
        item.save(update_fields=["subject"], conflict_resolution="NeverOverwrite")
    alice_item = alice.calendar.get(id=item.id)
    assert alice_item.subject == "Renamed"
    assert messages(sim) == [("request", BOB), ("update", BOB)]


def test_ews_distinguished_property_sets_are_graphs_guids(sim: SimClient, graph: httpx.Client) -> None:
    class PublicTag(ExtendedProperty):
        distinguished_property_set_id = "PublicStrings"
        property_name = "SimTag"
        property_type = "String"

    CalendarItem.register("sim_public_tag", PublicTag)
    try:
        alice = ews_account(sim.ews_url, ALICE)
        start = EWSDateTime(2030, 1, 7, 9, 0, tzinfo=UTC)
        CalendarItem(
            account=alice,
            folder=alice.calendar,
            subject="tagged",
            start=start,
            end=start + dt.timedelta(hours=1),
            sim_public_tag="blue",
        ).save(send_meeting_invitations="SendToNone")
        public = "String {00020329-0000-0000-C000-000000000046} Name SimTag"
        flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{public}' and ep/value eq 'blue')"
        assert [e["subject"] for e in graph.get(f"/users/{ALICE}/events", params={"$filter": flt}).json()["value"]] == [
            "tagged"
        ]
    finally:
        CalendarItem.deregister("sim_public_tag")


# --- update ---------------------------------------------------------------------------------------------------


def test_patch_honours_if_match(sim: SimClient, graph: httpx.Client) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event()).json()
    url = f"/users/{ALICE}/events/{created['id']}"
    good = graph.patch(url, json={"subject": "v2"}, headers={"If-Match": created["@odata.etag"]})
    assert good.status_code == 200 and good.json()["subject"] == "v2"
    assert good.json()["@odata.etag"] != created["@odata.etag"]

    stale = graph.patch(url, json={"subject": "v3"}, headers={"If-Match": created["@odata.etag"]})
    assert error(stale)[:2] == (412, "ErrorIrresolvableConflict")
    assert graph.get(url).json()["subject"] == "v2"
    assert graph.patch(url, json={"subject": "v4"}, headers={"If-Match": "*"}).status_code == 200
    assert graph.patch(url, json={"subject": "v5"}).status_code == 200  # no If-Match: last writer wins
    minimal = graph.patch(url, json={"subject": "v6"}, headers={"Prefer": "return=minimal"})
    assert minimal.status_code == 204 and minimal.headers["ETag"] == f'W/"{sim.calendar(ALICE)[0]["changeKey"]}"'


def test_patching_a_meeting_updates_attendees_invites_added_ones_and_cancels_removed_ones(
    sim: SimClient, graph: httpx.Client
) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event(attendees=[BOB, CAROL])).json()
    url = f"/users/{ALICE}/events/{created['id']}"
    graph.patch(
        url,
        json={
            "start": {"dateTime": "2030-01-07T11:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-07T12:00:00", "timeZone": "UTC"},
        },
    )
    assert messages(sim)[2:] == [("update", BOB), ("update", CAROL)]
    assert sim.calendar(BOB)[0]["start"] == "2030-01-07T11:00:00Z"

    graph.patch(url, json={"attendees": [{"emailAddress": {"address": BOB}}, {"emailAddress": {"address": DAVE}}]})
    assert messages(sim)[4:] == [("update", BOB), ("request", DAVE), ("cancel", CAROL)]
    assert sim.calendar(CAROL)[0]["isCancelled"] is True and sim.calendar(DAVE)[0]["uid"] == created["iCalUId"]

    # A change attendees do not see (an extended property) sends nothing.
    graph.patch(url, json={"singleValueExtendedProperties": [{"id": EVENT_ID, "value": "SF-1"}]})
    assert len(sim.messages()) == 7

    graph.patch(url, json={"attendees": []})
    assert messages(sim)[7:] == [("cancel", BOB), ("cancel", DAVE)]


def test_adding_attendees_to_an_appointment_makes_it_a_meeting(sim: SimClient, graph: httpx.Client) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event()).json()
    patched = graph.patch(
        f"/users/{ALICE}/events/{created['id']}", json={"attendees": [{"emailAddress": {"address": BOB}}]}
    )
    assert patched.status_code == 200 and messages(sim) == [("request", BOB)]
    assert sim.calendar(ALICE)[0]["isMeeting"] is True and len(sim.calendar(BOB)) == 1


# --- delete, cancel, answers -----------------------------------------------------------------------------------


def test_deleting_a_meeting_cancels_it_for_every_attendee(sim: SimClient, graph: httpx.Client) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event(attendees=[BOB])).json()
    assert graph.delete(f"/users/{ALICE}/events/{created['id']}").status_code == 204
    assert sim.calendar(ALICE) == [] and messages(sim) == [("request", BOB), ("cancel", BOB)]
    assert sim.calendar(BOB)[0]["subject"].startswith("Canceled: ")
    appointment = graph.post(f"/users/{ALICE}/events", json=event()).json()
    assert graph.delete(f"/users/{ALICE}/events/{appointment['id']}").status_code == 204
    assert len(sim.messages()) == 2
    assert error(graph.delete(f"/users/{ALICE}/events/{appointment['id']}"))[:2] == (404, "ErrorItemNotFound")


def test_cancel_is_the_organizers(sim: SimClient, graph: httpx.Client) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event(attendees=[BOB])).json()
    bobs = graph.get(f"/users/{BOB}/events").json()["value"][0]
    refused = graph.post(f"/users/{BOB}/events/{bobs['id']}/cancel", json={"comment": "not mine"})
    assert error(refused)[:2] == (400, "ErrorInvalidRequest")

    cancelled = graph.post(f"/users/{ALICE}/events/{created['id']}/cancel", json={"Comment": "Sorry"})
    assert cancelled.status_code == 202
    assert sim.calendar(ALICE) == [] and messages(sim) == [("request", BOB), ("cancel", BOB)]
    assert graph.get(f"/users/{BOB}/events/{bobs['id']}").json()["isCancelled"] is True


@pytest.mark.parametrize(
    ("action", "recorded", "show_as"),
    [("accept", "accepted", "busy"), ("tentativelyAccept", "tentativelyAccepted", "tentative")],
)
def test_an_attendees_answer_is_recorded_on_the_organizers_event(
    graph: httpx.Client, action: str, recorded: str, show_as: str
) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event(attendees=[BOB])).json()
    bobs = graph.get(f"/users/{BOB}/events").json()["value"][0]
    assert (
        graph.post(
            f"/users/{BOB}/events/{bobs['id']}/{action}", json={"comment": "ok", "sendResponse": True}
        ).status_code
        == 202
    )
    [attendee] = graph.get(f"/users/{ALICE}/events/{created['id']}").json()["attendees"]
    assert attendee["status"]["response"] == recorded and attendee["status"]["time"] != "0001-01-01T00:00:00Z"
    mine = graph.get(f"/users/{BOB}/events/{bobs['id']}").json()
    assert mine["responseStatus"]["response"] == recorded and mine["showAs"] == show_as


def test_declining_removes_the_copy_and_an_organizer_cannot_answer(graph: httpx.Client) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event(attendees=[BOB])).json()
    bobs = graph.get(f"/users/{BOB}/events").json()["value"][0]
    assert graph.post(f"/users/{BOB}/events/{bobs['id']}/decline", json={"sendResponse": False}).status_code == 202
    assert graph.get(f"/users/{BOB}/events").json()["value"] == []
    # Without a response sent, the organizer's event does not learn of it.
    assert graph.get(f"/users/{ALICE}/events/{created['id']}").json()["attendees"][0]["status"]["response"] == "none"
    assert error(graph.post(f"/users/{ALICE}/events/{created['id']}/accept", json={}))[:2] == (
        400,
        "ErrorInvalidRequest",
    )


# --- Teams ---------------------------------------------------------------------------------------------------


def test_a_teams_meeting_gets_a_stable_join_url(sim: SimClient, graph: httpx.Client) -> None:
    created = graph.post(
        f"/users/{ALICE}/events",
        json=event(attendees=[BOB], isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness"),
    ).json()
    join = created["onlineMeeting"]["joinUrl"]
    assert created["isOnlineMeeting"] is True and created["onlineMeetingProvider"] == "teamsForBusiness"
    assert join.startswith("https://teams.microsoft.com/l/meetup-join/19%3ameeting_")
    assert created["onlineMeetingUrl"] is None  # deprecated: Graph leaves it null for Teams meetings
    assert graph.get(f"/users/{ALICE}/events/{created['id']}").json()["onlineMeeting"]["joinUrl"] == join
    patched = graph.patch(f"/users/{ALICE}/events/{created['id']}", json={"subject": "moved", "isOnlineMeeting": False})
    assert patched.json()["onlineMeeting"]["joinUrl"] == join and patched.json()["isOnlineMeeting"] is True
    # The attendee's copy carries the same meeting.
    assert graph.get(f"/users/{BOB}/events").json()["value"][0]["onlineMeeting"]["joinUrl"] == join
    other = graph.post(f"/users/{ALICE}/events", json=event(isOnlineMeeting=True)).json()
    assert other["onlineMeeting"]["joinUrl"] != join  # the default provider is Teams


def test_patching_an_event_online_adds_a_teams_meeting(graph: httpx.Client) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event()).json()
    assert created["isOnlineMeeting"] is False and created["onlineMeeting"] is None
    url = f"/users/{ALICE}/events/{created['id']}"
    patched = graph.patch(url, json={"isOnlineMeeting": True, "onlineMeetingProvider": "teamsForBusiness"}).json()
    assert patched["isOnlineMeeting"] is True and patched["onlineMeeting"]["joinUrl"].startswith("https://teams.")


def test_without_teams_on_the_organizers_calendar_the_event_is_saved_without_a_meeting(
    sim: SimClient, graph: httpx.Client
) -> None:
    calendar = graph.get(f"/users/{TEAMS_DISABLED_MAILBOX}/calendar").json()
    assert calendar["allowedOnlineMeetingProviders"] == [] and calendar["defaultOnlineMeetingProvider"] == "unknown"
    assert graph.get(f"/users/{ALICE}/calendar").json()["allowedOnlineMeetingProviders"] == ["teamsForBusiness"]
    created = graph.post(
        f"/users/{TEAMS_DISABLED_MAILBOX}/events",
        json=event(isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness"),
    )
    assert created.status_code == 201
    assert created.json()["isOnlineMeeting"] is False and created.json()["onlineMeeting"] is None
    assert created.json()["onlineMeetingProvider"] == "unknown"
    # A provider no calendar here allows is treated alike.
    skype = graph.post(
        f"/users/{ALICE}/events", json=event(isOnlineMeeting=True, onlineMeetingProvider="skypeForBusiness")
    )
    assert skype.json()["isOnlineMeeting"] is False

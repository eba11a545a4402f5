"""Event <-> JSON: ids, time zones, extended property ids, Prefer headers and the store fields Graph maps to."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ews_sim.graph.errors import GraphError
from ews_sim.graph.json import (
    View,
    apply_event,
    canonical,
    event_json,
    ews_id,
    format_ext_id,
    parse_dtz,
    parse_ext_id,
    preferences,
    rest_id,
    windows_zone,
    zone,
)
from ews_sim.store import Attendee, CalendarItem, ext_key, new_item_id
from tests.ews_sim.graph.support import EVENT_ID, PROP_SET


def test_rest_ids_are_ews_ids_with_url_safe_characters() -> None:
    ews = "AAMkAD+/abc==" + new_item_id()
    assert "/" not in rest_id(ews) and "+" not in rest_id(ews)
    assert ews_id(rest_id(ews)) == ews
    assert rest_id("AA+B/C=") == "AA_B-C="


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("UTC", "UTC"),
        (None, "UTC"),
        ("Etc/UTC", "UTC"),
        ("W. Europe Standard Time", "W. Europe Standard Time"),
        ("Europe/Berlin", "W. Europe Standard Time"),
        ("America/Los_Angeles", "Pacific Standard Time"),
    ],
)
def test_zones_are_read_by_windows_or_iana_name_and_stored_by_windows_id(name: str | None, stored: str) -> None:
    zone(name)
    assert windows_zone(name) == stored


@pytest.mark.parametrize("name", ["Mars Standard Time", "../etc/passwd", "Europe/Atlantis"])
def test_unknown_zones_are_time_zone_not_supported(name: str) -> None:
    with pytest.raises(GraphError) as caught:
        zone(name)
    assert (caught.value.status, caught.value.code) == (400, "TimeZoneNotSupportedException")


def test_date_times_with_seven_digit_fractions_offsets_and_z() -> None:
    local = {"dateTime": "2030-07-01T09:00:00.0000000", "timeZone": "Pacific Standard Time"}
    assert parse_dtz(local, "start") == (datetime(2030, 7, 1, 16, tzinfo=UTC), "Pacific Standard Time")
    assert parse_dtz({"dateTime": "2030-07-01T09:00:00Z"}, "start")[0] == datetime(2030, 7, 1, 9, tzinfo=UTC)
    offset = {"dateTime": "2030-07-01T09:00:00+02:00", "timeZone": "UTC"}
    assert parse_dtz(offset, "start")[0] == datetime(2030, 7, 1, 7, tzinfo=UTC)
    with pytest.raises(GraphError, match="ErrorInvalidRequest"):
        parse_dtz({"dateTime": "tomorrow", "timeZone": "UTC"}, "start")


@pytest.mark.parametrize(
    ("graph_id", "attrs"),
    [
        (EVENT_ID, {"PropertySetId": PROP_SET, "PropertyName": "DownsyncEventId", "PropertyType": "String"}),
        (
            f"Integer {{{PROP_SET.upper()}}} Id 0x8005",
            {"PropertySetId": PROP_SET, "PropertyId": str(0x8005), "PropertyType": "Integer"},
        ),
        ("String 0x0037", {"PropertyTag": "0x0037", "PropertyType": "String"}),
        (
            f"string {PROP_SET} name Spaced Name",
            {"PropertySetId": PROP_SET, "PropertyName": "Spaced Name", "PropertyType": "string"},
        ),
    ],
)
def test_extended_property_ids_as_ews_field_uris(graph_id: str, attrs: dict[str, str]) -> None:
    assert parse_ext_id(graph_id) == attrs
    assert ext_key(parse_ext_id(format_ext_id(attrs))) == ext_key(attrs)


def test_distinguished_sets_are_named_by_guid() -> None:
    ews = {"DistinguishedPropertySetId": "PublicStrings", "PropertyName": "Tag", "PropertyType": "String"}
    assert format_ext_id(ews) == "String {00020329-0000-0000-c000-000000000046} Name Tag"
    assert ext_key(ews) == ext_key(parse_ext_id("String {00020329-0000-0000-C000-000000000046} Name Tag"))


@pytest.mark.parametrize("bad", ["", "String", "String {not-a-guid} Name X", "Name X", 7, None])
def test_malformed_extended_property_ids_are_refused(bad: object) -> None:
    with pytest.raises(GraphError, match="ErrorInvalidExtendedProperty"):
        parse_ext_id(bad)


def test_prefer_headers() -> None:
    found = preferences(['outlook.timezone="Pacific Standard Time", return=minimal', 'IdType="ImmutableId"'])
    assert found == {"outlook.timezone": "Pacific Standard Time", "return": "minimal", "idtype": "ImmutableId"}


def test_an_ews_item_as_graph_json() -> None:
    item = CalendarItem(
        item_id=new_item_id(),
        mailbox="bob@contoso.com",
        uid="UID1",
        start=datetime(2030, 1, 7, 9, tzinfo=UTC),
        end=datetime(2030, 1, 7, 10, tzinfo=UTC),
        subject="Copy",
        body="<p>Hello <b>there</b></p>",
        body_type="HTML",
        free_busy="WorkingElsewhere",
        my_response="Tentative",
        organizer=Attendee(email="alice@contoso.com", name="Alice"),
        required=[
            Attendee(email="bob@contoso.com", response="Accept", last_response_time=datetime(2030, 1, 1, tzinfo=UTC))
        ],
        organizer_item_id="elsewhere",
        is_meeting=True,
    )
    out = event_json(item, View(base="https://x", zone_name="Tokyo Standard Time"))
    assert out["isOrganizer"] is False and out["responseStatus"]["response"] == "tentativelyAccepted"
    assert out["showAs"] == "workingElsewhere" and out["bodyPreview"] == "Hello there"
    assert out["body"]["contentType"] == "html" and out["organizer"]["emailAddress"]["name"] == "Alice"
    assert out["attendees"][0]["status"] == {"response": "accepted", "time": "2030-01-01T00:00:00Z"}
    assert out["start"] == {"dateTime": "2030-01-07T18:00:00.0000000", "timeZone": "Tokyo Standard Time"}
    assert out["location"]["displayName"] == "" and out["locations"] == []
    selected = event_json(item, View(base="https://x", select={"subject"}))
    assert set(selected) == {"@odata.etag", "id", "subject"}


def test_writing_json_sets_the_shared_store_fields() -> None:
    stamp = datetime(2030, 1, 1, tzinfo=UTC)
    item = CalendarItem(item_id="i", mailbox="a@b.c", uid="u", start=stamp, end=stamp)
    body = canonical(
        {
            "SUBJECT": "S",
            "importance": "high",
            "sensitivity": "Private",
            "isReminderOn": False,
            "reminderMinutesBeforeStart": 5,
            "categories": ["Red"],
            "location": {"displayName": ""},
            "locations": [{"displayName": "ignored: location wins"}],
            "multiValueExtendedProperties": [{"id": f"StringArray {{{PROP_SET}}} Name Tags", "value": ["a", "b"]}],
            "iCalUId": "read-only, ignored",
        }
    )
    written = apply_event(item, body)
    assert (item.subject, item.importance, item.sensitivity) == ("S", "High", "Private")
    assert (item.reminder_is_set, item.reminder_minutes, item.categories, item.location) == (False, 5, ["Red"], None)
    assert item.uid == "u" and "iCalUId" not in written.changed
    [tags] = item.extended.values()
    assert tags.value == ["a", "b"]

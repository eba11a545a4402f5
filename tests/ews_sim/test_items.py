"""Appointments through the real exchangelib: create, get, update, delete, find, bulk forms."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from exchangelib import CalendarItem, EWSDate, EWSDateTime, EWSTimeZone, Q
from exchangelib.errors import ErrorIrresolvableConflict, ErrorItemNotFound
from exchangelib.extended_properties import ExtendedProperty

from ews_sim.testing import SimClient, ews_account

UTC = EWSTimeZone("UTC")
SET_ID = "c11ff724-aa03-4555-9952-8fa248a11c3e"


class SimEventId(ExtendedProperty):
    property_set_id = SET_ID
    property_name = "SimSimEventId"
    property_type = "String"


@pytest.fixture(scope="module", autouse=True)
def _register_property() -> object:
    CalendarItem.register("sim_test_event_id", SimEventId)
    yield
    CalendarItem.deregister("sim_test_event_id")


def at(day: int, hour: int, minute: int = 0) -> EWSDateTime:
    return EWSDateTime(2026, 3, day, hour, minute, tzinfo=UTC)


def appointment(account: object, event_id: str, start: EWSDateTime, hours: int = 1, **fields: object) -> CalendarItem:
    return CalendarItem(
        account=account,
        folder=account.calendar,  # type: ignore[attr-defined]
        subject=fields.pop("subject", f"Visit {event_id}"),
        body=fields.pop("body", "Bring the contract"),
        location=fields.pop("location", "Room 'Red'"),
        start=start,
        end=start + dt.timedelta(hours=hours),
        legacy_free_busy_status="Busy",
        sim_test_event_id=event_id,
        **fields,
    )


def test_create_get_update_delete_appointment(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = appointment(alice, "EV-1", at(16, 10), body="Line one\nLine <two> & 'three'")
    item.save(send_meeting_invitations="SendToNone")
    assert item.id and item.changekey

    [stored] = sim.calendar("alice@contoso.com")
    assert stored["itemId"] == item.id
    assert (stored["subject"], stored["location"], stored["freeBusy"]) == ("Visit EV-1", "Room 'Red'", "Busy")
    assert (stored["start"], stored["end"]) == ("2026-03-16T10:00:00Z", "2026-03-16T11:00:00Z")
    assert stored["body"] == "Line one\nLine <two> & 'three'"
    assert stored["extendedProperties"] == {f"{SET_ID}:SimSimEventId": "EV-1"}
    assert stored["isMeeting"] is False and stored["attendees"] == []

    fetched = alice.calendar.get(id=item.id)
    assert fetched.subject == "Visit EV-1" and fetched.sim_test_event_id == "EV-1"
    assert fetched.start == at(16, 10) and fetched.end == at(16, 11)
    assert fetched.organizer.email_address == "alice@contoso.com"
    assert fetched.my_response_type == "Organizer"

    fetched.subject, fetched.start, fetched.end, fetched.location = "Moved", at(17, 9), at(17, 10, 30), None
    fetched.save(update_fields=["subject", "start", "end", "location"], send_meeting_invitations="SendToNone")
    [updated] = sim.calendar("alice@contoso.com")
    assert (updated["subject"], updated["start"], updated["end"]) == (
        "Moved",
        "2026-03-17T09:00:00Z",
        "2026-03-17T10:30:00Z",
    )
    assert updated["location"] is None
    assert updated["changeKey"] != stored["changeKey"]

    fetched.delete()
    assert sim.calendar("alice@contoso.com") == []
    with pytest.raises(ErrorItemNotFound):
        alice.calendar.get(id=item.id)


def test_times_with_offsets_are_stored_in_utc(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    berlin = EWSTimeZone("Europe/Berlin")
    summer = EWSDateTime(2026, 7, 1, 9, 0, tzinfo=berlin)
    winter = EWSDateTime(2026, 12, 1, 9, 0, tzinfo=berlin)
    for start in (summer, winter):
        appointment(alice, f"TZ-{start.month}", start).save(send_meeting_invitations="SendToNone")
    starts = sorted(i["start"] for i in sim.calendar("alice@contoso.com"))
    assert starts == ["2026-07-01T07:00:00Z", "2026-12-01T08:00:00Z"]
    fetched = sorted(alice.calendar.all(), key=lambda i: i.start)
    assert [i.start.astimezone(zoneinfo.ZoneInfo("Europe/Berlin")).hour for i in fetched] == [9, 9]


def test_all_day_event_round_trips(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="Offsite",
        is_all_day=True,
        start=EWSDate(2026, 3, 20),
        end=EWSDate(2026, 3, 21),
        legacy_free_busy_status="OOF",
    )
    item.save(send_meeting_invitations="SendToNone")
    fetched = alice.calendar.get(id=item.id)
    assert fetched.is_all_day is True and fetched.legacy_free_busy_status == "OOF"
    assert fetched.start == EWSDate(2026, 3, 20)


def test_find_by_extended_property(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    for n in range(5):
        appointment(alice, f"EV-{n}", at(16, 8 + n)).save(send_meeting_invitations="SendToNone")
    plain = CalendarItem(account=alice, folder=alice.calendar, subject="untagged", start=at(16, 20), end=at(16, 21))
    plain.save(send_meeting_invitations="SendToNone")

    found = list(alice.calendar.filter(sim_test_event_id="EV-3"))
    assert [i.subject for i in found] == ["Visit EV-3"]
    assert [i.subject for i in alice.calendar.filter(sim_test_event_id="EV-9")] == []
    # Exchange compares strings case-insensitively; callers must check the exact value themselves.
    assert [i.sim_test_event_id for i in alice.calendar.filter(sim_test_event_id="ev-3")] == ["EV-3"]
    either = alice.calendar.filter(sim_test_event_id__in=["EV-1", "EV-4"])
    assert sorted(i.sim_test_event_id for i in either) == ["EV-1", "EV-4"]
    assert alice.calendar.filter(sim_test_event_id__exists=True).count() == 5
    assert [i.subject for i in alice.calendar.exclude(sim_test_event_id__exists=True)] == ["untagged"]
    assert alice.calendar.filter(~Q(subject="Visit EV-0"), sim_test_event_id__exists=True).count() == 4
    later = alice.calendar.filter(start__gt=at(16, 10), end__lt=at(16, 13, 30))
    assert sorted(i.subject for i in later) == ["Visit EV-3", "Visit EV-4"]
    assert [i.subject for i in alice.calendar.filter(subject__contains="ev-2")] == ["Visit EV-2"]
    # Bob's calendar holds none of alice's items.
    bob = ews_account(sim.ews_url, "bob@contoso.com")
    assert bob.calendar.filter(sim_test_event_id="EV-3").count() == 0


def test_find_pages_with_indexed_page_item_view(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    alice.bulk_create(
        folder=alice.calendar,
        items=[appointment(alice, f"P-{n:02d}", at(18, 0) + dt.timedelta(minutes=n)) for n in range(25)],
    )
    since = sim.log()[-1]["seq"]
    query = alice.calendar.filter(sim_test_event_id__exists=True).order_by("start").only("subject")
    query.page_size = 10
    subjects = [i.subject for i in query]
    assert subjects == [f"Visit P-{n:02d}" for n in range(25)]
    finds = [e for e in sim.log(since) if e["operation"] == "FindItem"]
    assert len(finds) == 3
    descending = [i.subject for i in alice.calendar.filter(sim_test_event_id__exists=True).order_by("-start")[:3]]
    assert descending == ["Visit P-24", "Visit P-23", "Visit P-22"]


def test_calendar_view_returns_overlapping_items(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    appointment(alice, "before", at(16, 6)).save(send_meeting_invitations="SendToNone")  # 06-07, outside
    appointment(alice, "edge", at(16, 8), hours=2).save(send_meeting_invitations="SendToNone")  # 08-10, overlaps
    appointment(alice, "inside", at(16, 10)).save(send_meeting_invitations="SendToNone")
    appointment(alice, "after", at(16, 12)).save(send_meeting_invitations="SendToNone")  # starts at the end
    seen = [i.sim_test_event_id for i in alice.calendar.view(start=at(16, 9), end=at(16, 12))]
    assert seen == ["edge", "inside"]


def test_bulk_create_update_delete(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    created = alice.bulk_create(
        folder=alice.calendar, items=[appointment(alice, f"B-{n}", at(19, 8 + n)) for n in range(3)]
    )
    assert len(created) == 3 and len({c.id for c in created}) == 3
    create_log = [e for e in sim.log() if e["operation"] == "CreateItem"]
    assert len(create_log) == 1 and create_log[0]["responseCodes"] == ["NoError"] * 3

    items = list(alice.fetch(ids=created))
    for item in items:
        item.subject = item.subject.upper()
    updated = alice.bulk_update(items=[(i, ["subject"]) for i in items])
    assert len(updated) == 3
    assert sorted(i["subject"] for i in sim.calendar("alice@contoso.com")) == ["VISIT B-0", "VISIT B-1", "VISIT B-2"]

    gone = created[0]
    alice.bulk_delete(ids=[gone])
    results = alice.bulk_delete(ids=[gone, created[1], created[2]])
    assert isinstance(results[0], ErrorItemNotFound) and results[1:] == [True, True]
    assert sim.calendar("alice@contoso.com") == []


def test_stale_change_key_with_never_overwrite_is_a_conflict(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = appointment(alice, "CK", at(16, 10))
    item.save(send_meeting_invitations="SendToNone")
    stale = alice.calendar.get(id=item.id)
    fresh = alice.calendar.get(id=item.id)
    fresh.subject = "first writer"
    fresh.save(update_fields=["subject"], send_meeting_invitations="SendToNone")

    stale.subject = "second writer"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(
            update_fields=["subject"], conflict_resolution="NeverOverwrite", send_meeting_invitations="SendToNone"
        )
    assert sim.calendar("alice@contoso.com")[0]["subject"] == "first writer"
    # AutoResolve, exchangelib's default, lets the later writer win.
    stale.save(update_fields=["subject"], send_meeting_invitations="SendToNone")
    assert sim.calendar("alice@contoso.com")[0]["subject"] == "second writer"


def test_end_before_start_is_refused_and_changes_nothing(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = appointment(alice, "T", at(16, 10))
    item.save(send_meeting_invitations="SendToNone")
    payload = alice.calendar.get(id=item.id)
    payload.start = at(16, 15)  # after the unchanged end
    with pytest.raises(Exception) as caught:
        payload.save(update_fields=["start"], send_meeting_invitations="SendToNone")
    assert "ErrorCalendarEndDateIsEarlierThanStartDate" in type(caught.value).__name__
    assert sim.calendar("alice@contoso.com")[0]["start"] == "2026-03-16T10:00:00Z"

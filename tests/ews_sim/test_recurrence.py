"""Recurring series through the real exchangelib: every pattern and range, occurrences, exceptions, deletions."""

from __future__ import annotations

import datetime as dt

import pytest
from exchangelib import Attendee, CalendarItem, EWSDateTime, EWSTimeZone, Mailbox
from exchangelib.errors import (
    ErrorCalendarCannotUseIdForOccurrenceId,
    ErrorCalendarCannotUseIdForRecurringMasterId,
    ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange,
    ErrorCalendarOccurrenceIsDeletedFromRecurrence,
)
from exchangelib.recurrence import (
    AbsoluteMonthlyPattern,
    AbsoluteYearlyPattern,
    DailyPattern,
    Recurrence,
    RelativeMonthlyPattern,
    RelativeYearlyPattern,
    WeeklyPattern,
)

from ews_sim.testing import SimClient
from tests.ews_sim.conftest import Connect

BERLIN = EWSTimeZone("Europe/Berlin")
START = EWSDateTime(2026, 3, 16, 10, 0, tzinfo=BERLIN)  # a Monday, two weeks before summer time starts
D = dt.date

# Each pattern with its first five dates from START, worked out by hand.
PATTERNS = {
    "daily": (
        DailyPattern(interval=2),
        [D(2026, 3, 16), D(2026, 3, 18), D(2026, 3, 20), D(2026, 3, 22), D(2026, 3, 24)],
    ),
    "weekly": (
        WeeklyPattern(interval=2, weekdays=[1, 4], first_day_of_week=1),  # Monday and Thursday, every other week
        [D(2026, 3, 16), D(2026, 3, 19), D(2026, 3, 30), D(2026, 4, 2), D(2026, 4, 13)],
    ),
    "absolute-monthly": (
        AbsoluteMonthlyPattern(interval=1, day_of_month=31),  # the last day of shorter months
        [D(2026, 3, 31), D(2026, 4, 30), D(2026, 5, 31), D(2026, 6, 30), D(2026, 7, 31)],
    ),
    "relative-monthly": (
        RelativeMonthlyPattern(interval=1, weekday=2, week_number=2),  # the second Tuesday
        [D(2026, 4, 14), D(2026, 5, 12), D(2026, 6, 9), D(2026, 7, 14), D(2026, 8, 11)],
    ),
    "absolute-yearly": (
        AbsoluteYearlyPattern(day_of_month=29, month=2),  # the 28th in common years
        [D(2027, 2, 28), D(2028, 2, 29), D(2029, 2, 28), D(2030, 2, 28), D(2031, 2, 28)],
    ),
    "relative-yearly": (
        RelativeYearlyPattern(weekday=5, week_number=5, month=3),  # the last Friday of March
        [D(2026, 3, 27), D(2027, 3, 26), D(2028, 3, 31), D(2029, 3, 30), D(2030, 3, 29)],
    ),
}


def series(account: object, recurrence: Recurrence, subject: str = "series", **fields: object) -> CalendarItem:
    item = CalendarItem(
        account=account,
        folder=account.calendar,  # type: ignore[attr-defined]
        subject=subject,
        start=START,
        end=START + dt.timedelta(hours=1),
        recurrence=recurrence,
        **fields,
    )
    item.save(send_meeting_invitations="SendToNone" if not fields.get("required_attendees") else "SendToAllAndSaveCopy")
    return item


def window(account: object, days_before: int = 1, days: int = 40, start: EWSDateTime = START) -> list[CalendarItem]:
    begin = start - dt.timedelta(days=days_before)
    return list(account.calendar.view(start=begin, end=begin + dt.timedelta(days=days)))  # type: ignore[attr-defined]


def local_dates(found: list[CalendarItem]) -> list[dt.date]:
    return [i.start.astimezone(BERLIN).date() for i in found]


BOUNDS = ("numbered", "end-date", "no-end")


@pytest.mark.parametrize("name", list(PATTERNS))
def test_every_pattern_and_range_expands_to_its_dates(connect: Connect, name: str) -> None:
    owner = connect(f"{name}@fabrikam.com")
    pattern, dates = PATTERNS[name]
    expected = {"numbered": dates[:4], "end-date": dates[:3], "no-end": dates}
    limits: dict[str, dict[str, object]] = {"numbered": {"number": 4}, "end-date": {"end": dates[2]}, "no-end": {}}
    owner.bulk_create(
        folder=owner.calendar,
        items=[
            CalendarItem(
                account=owner,
                folder=owner.calendar,
                subject=bound,
                start=START,
                end=START + dt.timedelta(hours=1),
                recurrence=Recurrence(pattern=pattern, start=START.date(), **limits[bound]),
            )
            for bound in BOUNDS
        ],
        send_meeting_invitations="SendToNone",
    )

    masters = {m.subject: m for m in owner.calendar.all()}  # without a calendar view, a series is its master
    assert sorted(masters) == sorted(BOUNDS) and {m.type for m in masters.values()} == {"RecurringMaster"}
    first = EWSDateTime.combine(dates[0], dt.time(10), tzinfo=BERLIN)
    for bound, master in masters.items():
        assert master.recurrence.pattern == pattern
        assert master.start == first and master.first_occurrence.start == first  # a series starts at its first
        last = master.last_occurrence
        assert (last.start.astimezone(BERLIN).date() if last else None) == (
            None if bound == "no-end" else expected[bound][-1]
        )

    end = EWSDateTime.combine(dates[-1] + dt.timedelta(days=1), dt.time(0), tzinfo=BERLIN)
    found = list(owner.calendar.view(start=START, end=end).only("subject", "start", "type", "uid"))
    for bound in BOUNDS:
        assert local_dates([i for i in found if i.subject == bound]) == expected[bound], bound
    assert {i.type for i in found} == {"Occurrence"}
    assert {i.start.astimezone(BERLIN).time() for i in found} == {dt.time(10)}  # across summer-time changes
    assert len({i.id for i in found}) == len(found)
    assert {i.uid for i in found if i.subject == "numbered"} == {masters["numbered"].uid}


def test_a_series_without_end_is_expanded_only_within_the_window(connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    series(alice, Recurrence(pattern=DailyPattern(interval=1), start=START.date()))
    far = START + dt.timedelta(days=3650)
    found = window(alice, days_before=0, days=3, start=far)
    assert local_dates(found) == [far.date() + dt.timedelta(days=n) for n in range(3)]


def test_occurrences_by_index_and_their_master(connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    item = series(alice, Recurrence(pattern=PATTERNS["weekly"][0], start=START.date(), number=5))
    master = alice.calendar.get(id=item.id)
    third = master.occurrence(3)
    third.refresh()
    assert third.type == "Occurrence" and third.start.astimezone(BERLIN).date() == D(2026, 3, 30)
    assert third.original_start == third.start and third.recurrence_id == third.start
    again = alice.calendar.get(id=third.id)  # an occurrence's own id is an item id too
    assert again.start == third.start and again.type == "Occurrence"
    back = third.recurring_master()
    back.refresh()
    assert back.id == master.id and back.type == "RecurringMaster"

    with pytest.raises(ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange):
        master.occurrence(6).refresh()
    single = CalendarItem(account=alice, folder=alice.calendar, subject="once", start=START, end=START)
    single.save(send_meeting_invitations="SendToNone")
    with pytest.raises(ErrorCalendarCannotUseIdForOccurrenceId):
        single.occurrence(1).refresh()
    with pytest.raises(ErrorCalendarCannotUseIdForRecurringMasterId):
        single.recurring_master().refresh()


def test_modified_and_deleted_occurrences(connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    item = series(alice, Recurrence(pattern=PATTERNS["daily"][0], start=START.date(), number=5))
    master = alice.calendar.get(id=item.id)
    moved = master.occurrence(2)
    moved.refresh()
    moved.subject, moved.start, moved.end = (
        "moved",
        moved.start + dt.timedelta(hours=3),
        moved.end + dt.timedelta(hours=3),
    )
    moved.save(update_fields=["subject", "start", "end"], send_meeting_invitations="SendToNone")
    master.occurrence(4).delete(send_meeting_cancellations="SendToNone")

    master.refresh()
    [modified] = master.modified_occurrences
    assert modified.start.astimezone(BERLIN) == EWSDateTime(2026, 3, 18, 13, tzinfo=BERLIN)
    assert modified.original_start.astimezone(BERLIN) == EWSDateTime(2026, 3, 18, 10, tzinfo=BERLIN)
    [deleted] = master.deleted_occurrences
    assert deleted.start.astimezone(BERLIN) == EWSDateTime(2026, 3, 22, 10, tzinfo=BERLIN)

    found = window(alice)
    assert [(i.type, i.subject, i.start.astimezone(BERLIN).hour) for i in found] == [
        ("Occurrence", "series", 10),
        ("Exception", "moved", 13),
        ("Occurrence", "series", 10),
        ("Occurrence", "series", 10),
    ]
    assert local_dates(found) == [D(2026, 3, 16), D(2026, 3, 18), D(2026, 3, 20), D(2026, 3, 24)]
    with pytest.raises(ErrorCalendarOccurrenceIsDeletedFromRecurrence):
        master.occurrence(4).refresh()
    exception = alice.calendar.get(id=modified.id)
    assert exception.type == "Exception" and exception.subject == "moved"

    # Moving the whole series starts it over from its pattern: the exception and the deletion are gone.
    master.start, master.end = master.start + dt.timedelta(hours=1), master.end + dt.timedelta(hours=1)
    master.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")
    found = window(alice)
    assert [i.start.astimezone(BERLIN).hour for i in found] == [11] * 5 and {i.type for i in found} == {"Occurrence"}


def test_a_recurring_meeting_reaches_attendees_with_its_exceptions(sim: SimClient, connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    bob_required = [Attendee(mailbox=Mailbox(email_address="bob@contoso.com"))]
    item = series(
        alice, Recurrence(pattern=PATTERNS["daily"][0], start=START.date(), number=3), required_attendees=bob_required
    )
    master = alice.calendar.get(id=item.id)
    first = master.occurrence(1)
    first.refresh()
    first.location = "Room 2"
    first.save(update_fields=["location"], send_meeting_invitations="SendToAllAndSaveCopy")
    master.occurrence(3).delete(send_meeting_cancellations="SendToAllAndSaveCopy")

    bob = connect("bob@contoso.com")
    found = window(bob)
    assert [(i.type, i.location, i.subject, i.legacy_free_busy_status) for i in found] == [
        ("Exception", "Room 2", "series", "Tentative"),
        ("Occurrence", None, "series", "Tentative"),
        ("Exception", None, "Canceled: series", "Free"),  # a cancelled occurrence stays until removed
    ]
    [bobs_master] = list(bob.calendar.all())
    assert bobs_master.type == "RecurringMaster" and bobs_master.is_recurring  # true on an attendee's master
    assert not alice.calendar.get(id=item.id).is_recurring  # false on the organizer's, as Exchange reports it
    kinds = [(m["kind"], m["start"]) for m in sim.messages(to="bob@contoso.com")]
    assert kinds == [
        ("request", "2026-03-16T09:00:00Z"),
        ("update", "2026-03-16T09:00:00Z"),
        ("cancel", "2026-03-20T09:00:00Z"),
    ]


def test_free_busy_holds_occurrences_and_exceptions(connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    item = series(alice, Recurrence(pattern=PATTERNS["daily"][0], start=START.date(), number=4))
    master = alice.calendar.get(id=item.id)
    moved = master.occurrence(2)
    moved.refresh()
    moved.start, moved.end = moved.start + dt.timedelta(hours=4), moved.end + dt.timedelta(hours=4)
    moved.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")
    master.occurrence(3).delete()

    [info] = list(
        alice.protocol.get_free_busy_info(
            accounts=[(alice, "Required", False)],
            start=START - dt.timedelta(hours=10),
            end=START + dt.timedelta(days=7),
        )
    )
    events = [
        (e.start.astimezone(BERLIN), e.details.is_recurring, e.details.is_exception) for e in info.calendar_events
    ]
    assert events == [
        (EWSDateTime(2026, 3, 16, 10, tzinfo=BERLIN), True, False),
        (EWSDateTime(2026, 3, 18, 14, tzinfo=BERLIN), True, True),
        (EWSDateTime(2026, 3, 22, 10, tzinfo=BERLIN), True, False),
    ]

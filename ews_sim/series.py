"""Recurring series: a master item, the occurrences its pattern gives, modified occurrences and deleted ones.

Exchange stores one master item per series; occurrences are not items of their own until one is
modified (an exception, kept on the master). A calendar view, free/busy and Graph's calendarView
expand the series within the asked window only, so a series without an end costs nothing outside
it. Every occurrence has an id of its own (derived from the master's id and its original start),
which GetItem, UpdateItem and DeleteItem accept like any item id, as they accept
``OccurrenceItemId`` (master id and 1-based index) and ``RecurringMasterItemId`` (an occurrence's id,
meaning its master).

Occurrences keep the master's local start time in the master's time zone; changing the master's
start, end or pattern moves every occurrence and drops the modified and deleted ones, as Outlook
warns when a series is rescheduled.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo

from ews_sim import timezones
from ews_sim.store import CalendarItem, Organisation

_MARK = b"\x00\x00\x00\x01"
_ID_LENGTH = 68  # store.new_item_id: 4 zero bytes, a UUID, a counter and 40 zero bytes


class SeriesError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --- ids --------------------------------------------------------------------------------------------------


def occurrence_id(master_id: str, original_start: datetime) -> str:
    raw = base64.b64decode(master_id)
    stamp = int(original_start.timestamp()).to_bytes(8, "big", signed=True)
    return base64.b64encode(_MARK + raw[4:28] + stamp + raw[36:]).decode()


def split_id(item_id: str) -> tuple[str, datetime] | None:
    """(master id, original start) of an occurrence id, None for any other id."""
    try:
        raw = base64.b64decode(item_id, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _ID_LENGTH or raw[:4] != _MARK:
        return None
    master = base64.b64encode(b"\x00" * 4 + raw[4:28] + b"\x00" * 40).decode()
    return master, datetime.fromtimestamp(int.from_bytes(raw[28:36], "big", signed=True), UTC)


# --- the pattern's starts ---------------------------------------------------------------------------------


def zone_of(item: CalendarItem) -> tzinfo:
    if item.start_tz:
        try:
            return timezones.zone(item.start_tz)
        except timezones.UnknownTimeZoneError:
            pass
    return UTC


def original_starts(master: CalendarItem, until: datetime | None = None) -> Iterator[datetime]:
    """The UTC starts the pattern gives, in order, up to ``until`` (inclusive) or the range's end."""
    assert master.recurrence is not None
    tz = zone_of(master)
    local = master.start.astimezone(tz)
    last_day = until.astimezone(tz).date() if until is not None else None
    for day in master.recurrence.dates(until=last_day):
        moment = datetime.combine(day, local.time(), tz).astimezone(UTC)
        if until is not None and moment > until:
            return
        yield moment


def align(master: CalendarItem) -> None:
    """Move a new or re-patterned master to its first occurrence (Exchange stores the series' start there)."""
    first = next(original_starts(master), None)
    if first is None:
        raise SeriesError("ErrorRecurrenceHasNoOccurrence", "The recurrence pattern has no occurrence.")
    duration = master.end - master.start
    master.start, master.end = first, first + duration


def duration(master: CalendarItem) -> timedelta:
    return master.end - master.start


# --- instances --------------------------------------------------------------------------------------------


def instance(master: CalendarItem, original: datetime) -> CalendarItem:
    """The occurrence of ``master`` that the pattern starts at ``original``: its exception if modified."""
    found = master.exceptions.get(original)
    if found is not None:
        return found
    return dataclasses.replace(
        master,
        item_id=occurrence_id(master.item_id, original),
        start=original,
        end=original + duration(master),
        recurrence=None,
        exceptions={},
        deleted_occurrences=set(),
        instance_kind="Occurrence",
        master_id=master.item_id,
        original_start=original,
    )


def overlaps(item: CalendarItem, start: datetime, end: datetime, edge: bool) -> bool:
    """Whether the item falls in [start, end): with ``edge`` an item ending exactly at ``start`` counts too."""
    return item.start < end and (item.end >= start if edge else item.end > start)


def expand(master: CalendarItem, start: datetime, end: datetime, edge: bool = False) -> list[CalendarItem]:
    """The occurrences and exceptions of a master that fall in the window (never the master itself)."""
    out = []
    length = duration(master)
    for original in original_starts(master, until=end):
        if original + length < start or original in master.deleted_occurrences or original in master.exceptions:
            continue
        occurrence = instance(master, original)
        if overlaps(occurrence, start, end, edge):
            out.append(occurrence)
    out.extend(e for e in master.exceptions.values() if overlaps(e, start, end, edge))
    return out


def view(org: Organisation, mailbox: str, start: datetime, end: datetime, edge: bool = False) -> list[CalendarItem]:
    """What a calendar view of the window shows: single items, occurrences and exceptions, by start."""
    out: list[CalendarItem] = []
    for item in org.calendar(mailbox).values():
        if item.recurrence is not None:
            out.extend(expand(item, start, end, edge))
        elif overlaps(item, start, end, edge):
            out.append(item)
    out.sort(key=lambda i: (i.start, i.end, i.created))
    return out


def occurs_at(master: CalendarItem, original: datetime) -> bool:
    """Whether the pattern starts an occurrence at ``original`` (walking dates only, which is cheap)."""
    assert master.recurrence is not None
    tz = zone_of(master)
    local = master.start.astimezone(tz)
    wanted = original.astimezone(tz)
    if datetime.combine(wanted.date(), local.time(), tz).astimezone(UTC) != original:
        return False
    return any(day == wanted.date() for day in master.recurrence.dates(until=wanted.date()))


def resolve(org: Organisation, mailbox: str, item_id: str) -> CalendarItem | None:
    """A stored item, or an occurrence or exception of a stored master, by id."""
    stored = org.item(mailbox, item_id)
    if stored is not None:
        return stored
    split = split_id(item_id)
    if split is None:
        return None
    master = org.item(mailbox, split[0])
    if master is None or master.recurrence is None:
        return None
    original = split[1]
    if original in master.exceptions:
        return master.exceptions[original]
    if original in master.deleted_occurrences or not occurs_at(master, original):
        return None
    return instance(master, original)


def by_index(master: CalendarItem, index: int) -> CalendarItem:
    """The ``index``-th (1-based) occurrence of a master, as OccurrenceItemId names it."""
    if master.recurrence is None:
        raise SeriesError("ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange", "The item is not a recurring master.")
    if index >= 1:
        for n, original in enumerate(original_starts(master), start=1):
            if n < index:
                continue
            if original in master.deleted_occurrences:
                raise SeriesError(
                    "ErrorCalendarOccurrenceIsDeletedFromRecurrence", "The occurrence was deleted from the recurrence."
                )
            return instance(master, original)
    raise SeriesError(
        "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
        "The occurrence index is out of the recurrence range.",
    )


def master_of(org: Organisation, mailbox: str, item: CalendarItem) -> CalendarItem | None:
    if item.instance_kind is None:
        return item if item.recurrence is not None else None
    return org.item(mailbox, item.master_id or "")


def first_and_last(master: CalendarItem) -> tuple[CalendarItem | None, CalendarItem | None]:
    """The series' first and last occurrences (the last only for a series that ends)."""
    assert master.recurrence is not None
    bounded = master.recurrence.range != "NoEnd"
    first = last = None
    for original in original_starts(master):
        if original in master.deleted_occurrences:
            continue
        if first is None:
            first = instance(master, original)
            if not bounded:
                break
        last = original
    return first, (instance(master, last) if bounded and last is not None else None)


# --- changes ----------------------------------------------------------------------------------------------


def save_exception(master: CalendarItem, changed: CalendarItem) -> CalendarItem:
    """Keep a changed occurrence as an exception of its master."""
    assert changed.original_start is not None
    changed.instance_kind = "Exception"
    changed.touch()
    master.exceptions[changed.original_start] = changed
    master.touch()
    return changed


def delete_occurrence(master: CalendarItem, original: datetime) -> None:
    master.exceptions.pop(original, None)
    master.deleted_occurrences.add(original)
    master.touch()


def reschedule(master: CalendarItem) -> None:
    """After the master's start, end or pattern changed: the series starts over from its pattern."""
    master.exceptions.clear()
    master.deleted_occurrences.clear()
    align(master)


def copy_into(source: CalendarItem, target: CalendarItem) -> None:
    """Give an attendee's copy the organizer's pattern, exceptions and deletions (re-keyed to the copy's ids)."""
    target.recurrence = dataclasses.replace(source.recurrence) if source.recurrence is not None else None
    target.deleted_occurrences = set(source.deleted_occurrences)
    kept = {original: target.exceptions.get(original) for original in source.exceptions}
    target.exceptions = {}
    for original, exception in source.exceptions.items():
        answered = kept[original] or target  # the attendee's own answer to this occurrence, else to the series
        mine = dataclasses.replace(
            exception,
            item_id=occurrence_id(target.item_id, original),
            mailbox=target.mailbox,
            master_id=target.item_id,
            organizer_item_id=source.item_id,
            my_response=answered.my_response,
            free_busy=answered.free_busy,
        )
        target.exceptions[original] = mine

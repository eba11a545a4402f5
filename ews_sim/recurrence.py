"""Recurrence patterns and ranges: read from EWS XML and Graph JSON, written back, and expanded into dates.

Every pattern EWS and Graph share: daily, weekly, absolute and relative monthly, absolute and
relative yearly; every range: an end date, a number of occurrences, no end. Occurrence dates are
computed in the series' own time zone (its StartTimeZone), so a 10:00 meeting stays at 10:00 local
across daylight-saving changes, as Exchange keeps it.

Exchange's rules followed here: a weekly series counts its weeks from the week holding the start
date, weeks beginning on ``FirstDayOfWeek`` (Sunday when absent); a day of month past the end of a
month falls on its last day; ``Last`` is the last matching day of the month; ``Day``, ``Weekday``
and ``WeekendDay`` stand for any day, Monday to Friday and Saturday or Sunday.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from lxml import etree

from ews_sim.xmlutil import child_text, local

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
GROUPS = {"Day": DAYS, "Weekday": DAYS[:5], "WeekendDay": DAYS[5:]}
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
INDEXES = ("First", "Second", "Third", "Fourth", "Last")
PATTERNS = ("Daily", "Weekly", "AbsoluteMonthly", "RelativeMonthly", "AbsoluteYearly", "RelativeYearly")
RANGES = ("NoEnd", "EndDate", "Numbered")
# Exchange refuses more occurrences than this in a numbered range, and the simulator never walks further.
MAX_OCCURRENCES = 999
MAX_STEPS = 200_000


class RecurrenceError(ValueError):
    """A pattern or range Exchange would refuse: ``code`` is the EWS response code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Recurrence:
    pattern: str  # one of PATTERNS
    range: str  # one of RANGES
    start_date: date
    interval: int = 1
    days_of_week: list[str] = field(default_factory=list)  # names from DAYS or GROUPS
    first_day_of_week: str = "Sunday"
    day_of_month: int = 1
    index: str = "First"  # one of INDEXES
    month: int = 1  # 1..12
    end_date: date | None = None
    count: int | None = None

    def check(self) -> None:
        if not 1 <= self.interval <= 999:
            raise RecurrenceError("ErrorInvalidRecurrence", "The recurrence interval must be between 1 and 999.")
        if self.pattern == "Weekly" and not self.days_of_week:
            raise RecurrenceError("ErrorInvalidRecurrence", "A weekly recurrence needs at least one day of the week.")
        if not 1 <= self.day_of_month <= 31 or not 1 <= self.month <= 12:
            raise RecurrenceError("ErrorInvalidRecurrence", "The recurrence day of month or month is out of range.")
        if self.range == "Numbered" and not 1 <= (self.count or 0) <= MAX_OCCURRENCES:
            raise RecurrenceError(
                "ErrorInvalidRecurrence", f"The number of occurrences must be between 1 and {MAX_OCCURRENCES}."
            )
        if self.range == "EndDate" and (self.end_date is None or self.end_date < self.start_date):
            raise RecurrenceError("ErrorInvalidRecurrence", "The recurrence end date is before its start date.")

    # --- dates --------------------------------------------------------------------------------------------

    def dates(self, until: date | None = None) -> Iterator[date]:
        """The series' dates in order, from the start date, stopping at the range's end or after ``until``."""
        last = self.end_date if self.range == "EndDate" else None
        if until is not None and (last is None or until < last):
            last = until
        produced = 0
        for steps, day in enumerate(self._candidates()):
            if last is not None and day > last:
                return
            if steps > MAX_STEPS:
                return
            if day < self.start_date:
                continue
            yield day
            produced += 1
            if self.range == "Numbered" and produced >= (self.count or 0):
                return
            if self.range == "NoEnd" and until is None and produced >= MAX_OCCURRENCES:
                return

    def _candidates(self) -> Iterator[date]:
        start = self.start_date
        if self.pattern == "Daily":
            day = start
            while True:
                yield day
                day += timedelta(days=self.interval)
        elif self.pattern == "Weekly":
            wanted = _day_numbers(self.days_of_week)
            first = DAYS.index(self.first_day_of_week) if self.first_day_of_week in DAYS else 6
            week = start - timedelta(days=(start.weekday() - first) % 7)
            while True:
                for offset in range(7):
                    day = week + timedelta(days=offset)
                    if day.weekday() in wanted:
                        yield day
                week += timedelta(weeks=self.interval)
        else:
            yearly = self.pattern.endswith("Yearly")
            year, month = start.year, (self.month if yearly else start.month)
            if yearly and month < start.month:
                year += 1
            step = 12 * self.interval if yearly else self.interval
            while year <= 9999:
                found = self._in_month(year, month)
                if found is not None:
                    yield found
                month += step
                year, month = year + (month - 1) // 12, (month - 1) % 12 + 1

    def _in_month(self, year: int, month: int) -> date | None:
        length = calendar.monthrange(year, month)[1]
        if self.pattern.startswith("Absolute"):
            return date(year, month, min(self.day_of_month, length))
        wanted = _day_numbers(self.days_of_week or ["Day"])
        matching = [d for d in range(1, length + 1) if date(year, month, d).weekday() in wanted]
        if self.index == "Last":
            return date(year, month, matching[-1])
        position = INDEXES.index(self.index)
        return date(year, month, matching[position]) if position < len(matching) else None

    # --- EWS XML ------------------------------------------------------------------------------------------

    def xml(self) -> str:
        parts = []
        if self.pattern in ("Daily", "Weekly", "AbsoluteMonthly", "RelativeMonthly"):
            parts.append(f"<t:Interval>{self.interval}</t:Interval>")
        if self.pattern == "Weekly":
            parts.append(f"<t:DaysOfWeek>{' '.join(self.days_of_week)}</t:DaysOfWeek>")
            parts.append(f"<t:FirstDayOfWeek>{self.first_day_of_week}</t:FirstDayOfWeek>")
        elif self.pattern in ("RelativeMonthly", "RelativeYearly"):
            parts.append(f"<t:DaysOfWeek>{(self.days_of_week or ['Day'])[0]}</t:DaysOfWeek>")
            parts.append(f"<t:DayOfWeekIndex>{self.index}</t:DayOfWeekIndex>")
        elif self.pattern in ("AbsoluteMonthly", "AbsoluteYearly"):
            parts.append(f"<t:DayOfMonth>{self.day_of_month}</t:DayOfMonth>")
        if self.pattern.endswith("Yearly"):
            parts.append(f"<t:Month>{MONTHS[self.month - 1]}</t:Month>")
        pattern = f"<t:{self.pattern}Recurrence>{''.join(parts)}</t:{self.pattern}Recurrence>"
        bound = f"<t:StartDate>{self.start_date.isoformat()}</t:StartDate>"
        if self.range == "EndDate" and self.end_date is not None:
            bound += f"<t:EndDate>{self.end_date.isoformat()}</t:EndDate>"
        elif self.range == "Numbered":
            bound += f"<t:NumberOfOccurrences>{self.count}</t:NumberOfOccurrences>"
        return f"<t:Recurrence>{pattern}<t:{self.range}Recurrence>{bound}</t:{self.range}Recurrence></t:Recurrence>"

    @classmethod
    def from_xml(cls, elem: etree._Element) -> Recurrence:
        kids = [c for c in elem if isinstance(c.tag, str)]
        pattern_elem = next((c for c in kids if local(c).removesuffix("Recurrence") in PATTERNS), None)
        range_elem = next((c for c in kids if local(c).removesuffix("Recurrence") in RANGES), None)
        if pattern_elem is None or range_elem is None:
            raise RecurrenceError("ErrorInvalidRecurrence", "A recurrence needs a pattern and a range.")
        rec = cls(
            pattern=local(pattern_elem).removesuffix("Recurrence"),
            range=local(range_elem).removesuffix("Recurrence"),
            start_date=_xs_date(child_text(range_elem, "StartDate")),
        )
        rec.interval = int(child_text(pattern_elem, "Interval") or "1")
        days = (child_text(pattern_elem, "DaysOfWeek") or "").split()
        rec.days_of_week = days
        rec.first_day_of_week = child_text(pattern_elem, "FirstDayOfWeek") or "Sunday"
        rec.day_of_month = int(child_text(pattern_elem, "DayOfMonth") or "1")
        rec.index = child_text(pattern_elem, "DayOfWeekIndex") or "First"
        month = child_text(pattern_elem, "Month")
        rec.month = MONTHS.index(month) + 1 if month in MONTHS else rec.start_date.month
        if rec.range == "EndDate":
            rec.end_date = _xs_date(child_text(range_elem, "EndDate"))
        elif rec.range == "Numbered":
            rec.count = int(child_text(range_elem, "NumberOfOccurrences") or "0")
        rec.check()
        return rec

    # --- Graph JSON (patternedRecurrence) -------------------------------------------------------------------

    def graph_json(self, zone_name: str) -> dict[str, Any]:
        kind = self.pattern[0].lower() + self.pattern[1:]
        pattern: dict[str, Any] = {
            "type": kind,
            "interval": self.interval,
            "month": self.month if self.pattern.endswith("Yearly") else 0,
            "dayOfMonth": self.day_of_month if self.pattern.startswith("Absolute") else 0,
            "firstDayOfWeek": self.first_day_of_week.lower(),
            "index": self.index.lower(),
        }
        if self.pattern in ("Weekly", "RelativeMonthly", "RelativeYearly"):
            pattern["daysOfWeek"] = [d.lower() for d in _expand_days(self.days_of_week)]
        else:
            pattern["daysOfWeek"] = []
        bounds = {
            "type": {"NoEnd": "noEnd", "EndDate": "endDate", "Numbered": "numbered"}[self.range],
            "startDate": self.start_date.isoformat(),
            "endDate": self.end_date.isoformat() if self.end_date else "0001-01-01",
            "recurrenceTimeZone": zone_name,
            "numberOfOccurrences": self.count or 0,
        }
        return {"pattern": pattern, "range": bounds}

    @classmethod
    def from_graph(cls, value: dict[str, Any]) -> Recurrence:
        """A Graph ``patternedRecurrence`` (member names already lower-cased one level down by the caller)."""
        pattern = {k.lower(): v for k, v in (value.get("pattern") or {}).items()}
        bounds = {k.lower(): v for k, v in (value.get("range") or {}).items()}
        kinds = {p.lower(): p for p in PATTERNS}
        ranges = {"noend": "NoEnd", "enddate": "EndDate", "numbered": "Numbered"}
        kind = kinds.get(str(pattern.get("type", "")).lower())
        bound = ranges.get(str(bounds.get("type", "")).lower())
        if kind is None or bound is None:
            raise RecurrenceError("ErrorInvalidRecurrence", "recurrence needs a pattern type and a range type.")
        rec = cls(pattern=kind, range=bound, start_date=_xs_date(bounds.get("startdate")))
        rec.interval = int(pattern.get("interval") or 1)
        days = [str(d).capitalize() for d in pattern.get("daysofweek") or []]
        if any(d not in DAYS for d in days):
            raise RecurrenceError("ErrorInvalidRecurrence", "daysOfWeek holds a value that is no day of the week.")
        rec.days_of_week = _group_days(days) if kind != "Weekly" else days
        rec.first_day_of_week = str(pattern.get("firstdayofweek") or "sunday").capitalize()
        rec.day_of_month = int(pattern.get("dayofmonth") or 1)
        rec.index = str(pattern.get("index") or "first").capitalize()
        rec.month = int(pattern.get("month") or rec.start_date.month)
        if bound == "EndDate":
            rec.end_date = _xs_date(bounds.get("enddate"))
        elif bound == "Numbered":
            rec.count = int(bounds.get("numberofoccurrences") or 0)
        if rec.index not in INDEXES or rec.first_day_of_week not in DAYS:
            raise RecurrenceError("ErrorInvalidRecurrence", "recurrence index or firstDayOfWeek is not valid.")
        rec.check()
        return rec


def _xs_date(text: Any) -> date:
    """An xs:date, with or without a zone (``2026-03-16``, ``2026-03-16Z``, ``2026-03-16+01:00``)."""
    value = str(text or "").strip()
    try:
        return date.fromisoformat(value[:10])
    except ValueError as exc:
        raise RecurrenceError("ErrorInvalidRecurrence", f"{value!r} is not a date.") from exc


def _expand_days(names: list[str]) -> list[str]:
    out: list[str] = []
    for name in names:
        for day in GROUPS.get(name, (name,)):
            if day not in out:
                out.append(day)
    return out


def _day_numbers(names: list[str]) -> set[int]:
    return {DAYS.index(d) for d in _expand_days(names) if d in DAYS}


def _group_days(days: list[str]) -> list[str]:
    """Graph's list of days for a relative pattern as EWS's single DaysOfWeek value."""
    chosen = set(days)
    for name, members in GROUPS.items():
        if chosen == set(members):
            return [name]
    return days[:1]

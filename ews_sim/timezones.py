"""Windows (Exchange) time zones: ids, GetServerTimeZones definitions and the legacy availability zone.

Exchange 2016 describes its zones from the Windows registry's dynamic-DST tables. We have no registry,
so the rules are derived from the IANA database (via ``zoneinfo``) through CLDR's Windows-to-IANA
mapping, which is the table exchangelib itself ships in ``exchangelib.winzone``.
"""

from __future__ import annotations

import calendar
import functools
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType

from exchangelib.winzone import MS_TIMEZONE_TO_IANA_MAP
from lxml import etree

from ews_sim.xmlutil import T, attr, esc

__all__ = [
    "MS_TO_IANA",
    "LegacyTimeZone",
    "UnknownTimeZoneError",
    "all_ids",
    "definition_xml",
    "zone",
]

# Rules are derived for these years; Exchange's own tables start around 2006, and zoneinfo's
# explicit transition lists end in 2037 (later years come from the POSIX rule, i.e. the last group).
FIRST_YEAR = 2000
LAST_YEAR = 2037

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LAST = -1


class UnknownTimeZoneError(KeyError):
    """The id is not one of the server's time zones (Exchange answers ErrorInvalidTimeZone or similar)."""


def _build_map() -> Mapping[str, str]:
    candidates = dict(MS_TIMEZONE_TO_IANA_MAP)
    # exchangelib's table has UTC today, but the server cannot work without it, so don't rely on that.
    candidates.setdefault("UTC", "Etc/UTC")
    usable: dict[str, str] = {}
    for ms_id, iana in candidates.items():
        try:
            zoneinfo.ZoneInfo(iana)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            # A tzdata without this zone would give a definition we cannot derive; leave the id out.
            continue
        usable[ms_id] = iana
    return MappingProxyType(usable)


MS_TO_IANA: Mapping[str, str] = _build_map()


def all_ids() -> list[str]:
    return sorted(MS_TO_IANA)


def zone(ms_id: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(MS_TO_IANA[ms_id])
    except KeyError:
        raise UnknownTimeZoneError(ms_id) from None


# ---------------------------------------------------------------------------------------------
# Deriving Windows-style yearly rules from zoneinfo


@dataclass(frozen=True)
class _Change:
    at: datetime  # naive UTC instant
    before: timedelta  # UTC offset before
    after: timedelta  # UTC offset after

    @property
    def wall(self) -> datetime:
        # Windows gives a transition in the wall-clock time in force just before it (DST start in
        # standard time, DST end in daylight time); Exchange copies that into TimeOffset.
        return self.at + self.before


@dataclass(frozen=True)
class _DayRule:
    """'n-th (or last) weekday of month at time' with every occurrence number that fits so far."""

    month: int
    weekday: int  # 0 = Monday, as date.weekday()
    occurrences: frozenset[int]
    offset: timedelta  # since local midnight, in the wall-clock time before the transition

    @classmethod
    def at(cls, wall: datetime) -> _DayRule:
        day = wall.day
        nth = (day - 1) // 7 + 1
        fits = {nth} if nth <= 4 else set()
        if day + 7 > calendar.monthrange(wall.year, wall.month)[1]:
            fits.add(LAST)
        offset = wall - datetime.combine(wall.date(), time())
        return cls(wall.month, wall.weekday(), frozenset(fits), offset)

    def merge(self, other: _DayRule) -> _DayRule | None:
        if (self.month, self.weekday, self.offset) != (other.month, other.weekday, other.offset):
            return None
        common = self.occurrences & other.occurrences
        return replace(self, occurrences=common) if common else None

    @property
    def occurrence(self) -> int:
        # Every number left fits every year of the group; "last" is how Windows writes such a rule.
        return LAST if LAST in self.occurrences else min(self.occurrences)


@dataclass(frozen=True)
class _Rule:
    std: timedelta
    dst: timedelta | None = None
    to_dst: _DayRule | None = None
    to_std: _DayRule | None = None

    def merge(self, other: _Rule) -> _Rule | None:
        if (self.std, self.dst) != (other.std, other.dst):
            return None
        if self.dst is None:
            return self
        # Equal daylight offsets imply both years have both rules (see _year_rule).
        assert self.to_dst and self.to_std and other.to_dst and other.to_std
        to_dst = self.to_dst.merge(other.to_dst)
        to_std = self.to_std.merge(other.to_std)
        if to_dst is None or to_std is None:
            return None
        return _Rule(self.std, self.dst, to_dst, to_std)


def _offset_at(zi: zoneinfo.ZoneInfo, ts: int) -> timedelta:
    moment = datetime(1970, 1, 1) + timedelta(seconds=ts)
    offset = zi.fromutc(moment.replace(tzinfo=zi)).utcoffset()
    assert offset is not None
    return offset


def _changes(zi: zoneinfo.ZoneInfo) -> list[_Change]:
    # zoneinfo has no public transition list, so probe it. A week's step keeps ~140 zones fast; no
    # zone in tzdata for these years changes twice within a week (the closest are Ramadan breaks).
    epoch = datetime(1970, 1, 1)
    start = int((datetime(FIRST_YEAR - 1, 12, 1) - epoch).total_seconds())
    end = int((datetime(LAST_YEAR + 1, 2, 1) - epoch).total_seconds())
    step = 7 * 86400
    found: list[_Change] = []
    lo, lo_off = start, _offset_at(zi, start)
    while lo < end:
        hi = min(lo + step, end)
        hi_off = _offset_at(zi, hi)
        if hi_off == lo_off:
            lo = hi
            continue
        a = lo
        while hi - a > 1:
            mid = (a + hi) // 2
            if _offset_at(zi, mid) == lo_off:
                a = mid
            else:
                hi = mid
        after = _offset_at(zi, hi)
        found.append(_Change(epoch + timedelta(seconds=hi), lo_off, after))
        lo, lo_off = hi, after
    return found


def _year_rule(year: int, changes: list[_Change], start_off: timedelta) -> _Rule:
    """The year's zone as Windows stores it: a standard offset plus at most one daylight span.

    A regular DST year (northern or southern) maps exactly. Other years get the closest shape, as
    Windows' dynamic-DST tables do: a permanent offset change becomes a daylight span that starts
    on Jan 1 or ends on Dec 31; a year with several daylight spans (Ramadan breaks, a change of
    base offset plus DST) keeps the single span, or wrap-around pair, that is wrong for the
    shortest time. Intermediate offsets in a year with three (Samoa 2011) count as daylight.
    """
    offsets = [start_off, *(c.after for c in changes)]
    std, dst = min(offsets), max(offsets)
    if std == dst:
        return _Rule(std)
    # Year bounds as UTC instants, with the rule Windows would use for a span cut off there.
    first_wall, last_wall = datetime(year, 1, 1), datetime(year, 12, 31, 23, 59, 59)
    year_start = (first_wall - std, _DayRule.at(first_wall))
    year_end = (last_wall - dst, _DayRule.at(last_wall))

    def edge(change: _Change) -> tuple[datetime, _DayRule]:
        # A change at Dec 31 24:00 reads as Jan 1 00:00 of next year; keep its rule in this year.
        return change.at, _DayRule.at(min(max(change.wall, first_wall), last_wall))

    spans: list[tuple[tuple[datetime, _DayRule], tuple[datetime, _DayRule]]] = []
    opened = year_start if start_off > std else None
    for change in changes:
        if opened is None and change.after > std:
            opened = edge(change)
        elif opened is not None and change.after == std:
            spans.append((opened, edge(change)))
            opened = None
    if opened is not None:
        spans.append((opened, year_end))

    def error(cover: list[tuple[datetime, datetime]]) -> timedelta:
        # Time the candidate calls daylight and the zone doesn't, or the other way round.
        actual = sum((e[0] - s[0] for s, e in spans), timedelta())
        claimed = sum((e - s for s, e in cover), timedelta())
        both = timedelta()
        for (s_a, _), (e_a, _) in spans:
            for s_c, e_c in cover:
                both += max(timedelta(), min(e_a, e_c) - max(s_a, s_c))
        return actual + claimed - 2 * both

    # (error, daylight start, standard start) for every single span and every wrap-around pair.
    candidates = [(error([(s[0], e[0])]), s[1], e[1]) for s, e in spans]
    for _, out in spans:
        for into, _ in spans:
            if out[0] < into[0]:
                cover = [(year_start[0], out[0]), (into[0], year_end[0])]
                candidates.append((error(cover), into[1], out[1]))
    _, to_dst, to_std = min(candidates, key=lambda c: c[0])
    return _Rule(std, dst, to_dst, to_std)


@functools.cache
def _groups(ms_id: str) -> tuple[tuple[int, _Rule], ...]:
    """(first year, rule) for each run of years with one rule, oldest first."""
    zi = zone(ms_id)
    changes = _changes(zi)
    by_year: dict[int, list[_Change]] = {}
    for change in changes:
        # A change belongs to the year of its earlier wall-clock reading, so that a daylight span
        # ending at Dec 31 24:00 stays in the year it ends.
        by_year.setdefault((change.at + min(change.before, change.after)).year, []).append(change)
    groups: list[tuple[int, _Rule]] = []
    for year in range(FIRST_YEAR, LAST_YEAR + 1):
        in_year = by_year.get(year, [])
        if in_year:
            start_off = in_year[0].before
        else:
            start_off = _offset_at(zi, int((datetime(year, 7, 1) - datetime(1970, 1, 1)).total_seconds()))
        rule = _year_rule(year, in_year, start_off)
        merged = groups[-1][1].merge(rule) if groups else None
        if merged is None:
            groups.append((year, rule))
        else:
            groups[-1] = (groups[-1][0], merged)
    return tuple(groups)


# ---------------------------------------------------------------------------------------------
# TimeZoneDefinition XML


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    hours, rest = divmod(abs(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{sign}PT{hours}H"
    if minutes or secs:
        text += f"{minutes}M"
    if secs:
        text += f"{secs}S"
    return text


def _label(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours:02d}:{mins:02d}"


def _display_name(ms_id: str, std: timedelta) -> str:
    if ms_id == "UTC":
        return "(UTC) Coordinated Universal Time"
    return f"({_label(std)}) {ms_id}"


def _day_transition(period_id: str, rule: _DayRule) -> str:
    return (
        "<t:RecurringDayTransition>"
        f'<t:To Kind="Period">{esc(period_id)}</t:To>'
        f"<t:TimeOffset>{_duration(rule.offset)}</t:TimeOffset>"
        f"<t:Month>{rule.month}</t:Month>"
        f"<t:DayOfWeek>{WEEKDAYS[rule.weekday]}</t:DayOfWeek>"
        f"<t:Occurrence>{rule.occurrence}</t:Occurrence>"
        "</t:RecurringDayTransition>"
    )


@functools.cache
def definition_xml(ms_id: str, full: bool) -> str:
    """``<t:TimeZoneDefinition>`` for GetServerTimeZones (the ``t`` prefix is declared by the caller)."""
    groups = _groups(ms_id)  # raises UnknownTimeZoneError
    head = f"<t:TimeZoneDefinition Id={attr(ms_id)} Name={attr(_display_name(ms_id, groups[-1][1].std))}"
    if not full:
        return head + "/>"
    periods: list[str] = []
    tgroups: list[str] = []
    # exchangelib picks the group for a year by sorting transitions on the *string* group id, so
    # "10" would sort before "2"; zero-padding keeps string order equal to year order.
    width = len(str(len(groups) - 1))
    transitions: list[str] = []
    for index, (first_year, rule) in enumerate(groups):
        group_id = f"{index:0{width}d}"
        # Exchange names periods after the first year of the registry rule they come from.
        std_id = f"trule:Microsoft/Registry/{ms_id}/{first_year}-Standard"
        dst_id = f"trule:Microsoft/Registry/{ms_id}/{first_year}-Daylight"
        periods.append(f'<t:Period Bias={attr(_duration(-rule.std))} Name="Standard" Id={attr(std_id)}/>')
        if rule.dst is None or rule.to_dst is None or rule.to_std is None:
            body = f'<t:Transition><t:To Kind="Period">{esc(std_id)}</t:To></t:Transition>'
        else:
            periods.append(f'<t:Period Bias={attr(_duration(-rule.dst))} Name="Daylight" Id={attr(dst_id)}/>')
            body = _day_transition(dst_id, rule.to_dst) + _day_transition(std_id, rule.to_std)
        tgroups.append(f'<t:TransitionsGroup Id="{group_id}">{body}</t:TransitionsGroup>')
        if not index:
            transitions.append(f'<t:Transition><t:To Kind="Group">{group_id}</t:To></t:Transition>')
        else:
            transitions.append(
                "<t:AbsoluteDateTransition>"
                f'<t:To Kind="Group">{group_id}</t:To>'
                f"<t:DateTime>{first_year:04d}-01-01T00:00:00</t:DateTime>"
                "</t:AbsoluteDateTransition>"
            )
    return (
        head
        + ">"
        + f"<t:Periods>{''.join(periods)}</t:Periods>"
        + f"<t:TransitionsGroups>{''.join(tgroups)}</t:TransitionsGroups>"
        + f"<t:Transitions>{''.join(transitions)}</t:Transitions>"
        + "</t:TimeZoneDefinition>"
    )


# ---------------------------------------------------------------------------------------------
# SerializableTimeZone (GetUserAvailability's t:TimeZone)


def _t(name: str) -> str:
    return f"{{{T}}}{name}"


def _child_text(elem: etree._Element, name: str) -> str | None:
    found = elem.find(_t(name))
    return None if found is None or found.text is None else found.text.strip()


@dataclass(frozen=True)
class LegacyTimeTransition:
    """A SerializableTimeZoneTime: when a period starts each year, and its extra bias."""

    bias: int  # minutes, added to the zone's Bias during this period
    time_of_day: time  # wall-clock time in the period that ends here
    day_order: int  # 1-4, or 5 (also -1) for the last
    month: int
    weekday: int  # 0 = Monday
    # Kept but not applied: exchangelib never sends Year, and a DayOrder rule recurs every year.
    year: int | None = None

    @classmethod
    def from_element(cls, elem: etree._Element) -> LegacyTimeTransition:
        bias, time_text = _child_text(elem, "Bias"), _child_text(elem, "Time")
        order, month, weekday = (_child_text(elem, n) for n in ("DayOrder", "Month", "DayOfWeek"))
        if bias is None or time_text is None or order is None or month is None or weekday is None:
            raise ValueError(f"incomplete {etree.QName(elem).localname}")
        if weekday not in WEEKDAYS:
            # Day/Weekday/WeekendDay are valid DayOfWeekType values but name no single transition day.
            raise ValueError(f"DayOfWeek {weekday!r} cannot start a time zone period")
        day_order, month_number = int(order), int(month)
        if day_order not in (1, 2, 3, 4, 5, LAST) or not 1 <= month_number <= 12:
            raise ValueError(f"no such transition day: DayOrder {day_order}, Month {month_number}")
        year_text = _child_text(elem, "Year")
        return cls(
            bias=int(bias),
            time_of_day=time.fromisoformat(time_text),
            day_order=day_order,
            month=month_number,
            weekday=WEEKDAYS.index(weekday),
            year=int(year_text) if year_text else None,
        )

    def local_start(self, year: int) -> datetime:
        """The transition's wall-clock moment in ``year`` (in the time of the period it ends)."""
        days = calendar.monthrange(year, self.month)[1]
        first = date(year, self.month, 1)
        day = 1 + (self.weekday - first.weekday()) % 7
        if self.day_order in (5, LAST):
            day += 7 * ((days - day) // 7)
        else:
            day += 7 * (self.day_order - 1)
        return datetime.combine(date(year, self.month, day), self.time_of_day)


@dataclass(frozen=True)
class LegacyTimeZone:
    """Exchange's SerializableTimeZone: UTC = local + Bias + (StandardTime or DaylightTime).Bias."""

    bias: int
    standard: LegacyTimeTransition | None = None
    daylight: LegacyTimeTransition | None = None

    @classmethod
    def from_element(cls, elem: etree._Element) -> LegacyTimeZone:
        bias = _child_text(elem, "Bias")
        if bias is None:
            raise ValueError("TimeZone without Bias")
        std_elem, dst_elem = elem.find(_t("StandardTime")), elem.find(_t("DaylightTime"))
        return cls(
            bias=int(bias),
            standard=None if std_elem is None else LegacyTimeTransition.from_element(std_elem),
            daylight=None if dst_elem is None else LegacyTimeTransition.from_element(dst_elem),
        )

    @property
    def _std_bias(self) -> timedelta:
        return timedelta(minutes=self.bias + (self.standard.bias if self.standard else 0))

    @property
    def _dst_bias(self) -> timedelta:
        return timedelta(minutes=self.bias + (self.daylight.bias if self.daylight else 0))

    def _has_dst(self) -> bool:
        return self.standard is not None and self.daylight is not None and self._std_bias != self._dst_bias

    def _in_dst(self, utc: datetime) -> bool:
        """Whether a naive UTC instant falls in the daylight period."""
        if not self._has_dst():
            return False
        assert self.standard is not None and self.daylight is not None
        dst_start, dst_end = _dst_span(self, (utc - self._std_bias).year)
        if dst_start < dst_end:
            return dst_start <= utc < dst_end
        return not dst_end <= utc < dst_start  # southern hemisphere: daylight spans new year

    def to_utc(self, local: datetime) -> datetime:
        """Naive local time to aware UTC.

        A skipped local time uses standard time and a repeated one its first (daylight) occurrence,
        the same choice as zoneinfo with fold=0.
        """
        local = local.replace(tzinfo=None)
        as_dst = local + self._dst_bias
        if self._in_dst(as_dst):
            return as_dst.replace(tzinfo=UTC)
        return (local + self._std_bias).replace(tzinfo=UTC)

    def from_utc(self, utc: datetime) -> datetime:
        """Aware UTC to naive local time."""
        naive = utc.astimezone(UTC).replace(tzinfo=None)
        return naive - (self._dst_bias if self._in_dst(naive) else self._std_bias)


@functools.lru_cache(maxsize=4096)
def _dst_span(zone: LegacyTimeZone, year: int) -> tuple[datetime, datetime]:
    """The daylight period's UTC bounds in ``year``; availability asks this for every event it writes."""
    assert zone.standard is not None and zone.daylight is not None
    dst_start = zone.daylight.local_start(year) + zone._std_bias  # given in standard time
    dst_end = zone.standard.local_start(year) + zone._dst_bias  # given in daylight time
    return dst_start, dst_end

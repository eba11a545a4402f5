"""Time zone definitions and the availability TimeZone, against the schema, exchangelib and zoneinfo."""

from __future__ import annotations

import calendar
import os
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from exchangelib.properties import DaylightTime, StandardTime, TimeZone, TimeZoneDefinition
from exchangelib.util import create_element, set_xml_value
from exchangelib.version import EXCHANGE_2016, Version
from lxml import etree

from ews_sim import timezones as tz
from ews_sim.timezones import LegacyTimeZone, UnknownTimeZoneError

T = "http://schemas.microsoft.com/exchange/services/2006/types"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
VERSION = Version(EXCHANGE_2016)
YEARS = range(2020, 2031)
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

SAMPLE_ZONES = (
    "UTC",
    "W. Europe Standard Time",
    "GMT Standard Time",
    "Eastern Standard Time",
    "Pacific Standard Time",
    "AUS Eastern Standard Time",
    "India Standard Time",
    "Tokyo Standard Time",
)


def _schema_dir() -> Path:
    configured = os.environ.get("DOWNSYNC_EWS_SCHEMA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2].parent / "shared" / "ews-schema"


@cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(_schema_dir() / "messages.xsd")))


def _response(definitions: list[str]) -> etree._Element:
    text = (
        f'<m:GetServerTimeZonesResponse xmlns:m="{M}" xmlns:t="{T}">'
        "<m:ResponseMessages>"
        '<m:GetServerTimeZonesResponseMessage ResponseClass="Success">'
        "<m:ResponseCode>NoError</m:ResponseCode>"
        f"<m:TimeZoneDefinitions>{''.join(definitions)}</m:TimeZoneDefinitions>"
        "</m:GetServerTimeZonesResponseMessage>"
        "</m:ResponseMessages>"
        "</m:GetServerTimeZonesResponse>"
    )
    return etree.fromstring(text)


def _element(ms_id: str, full: bool = True) -> etree._Element:
    return _response([tz.definition_xml(ms_id, full)]).find(f".//{{{T}}}TimeZoneDefinition")


@cache
def _definition(ms_id: str) -> TimeZoneDefinition:
    return TimeZoneDefinition.from_xml(elem=_element(ms_id), account=None)


def _legacy_xml(ms_id: str, year: int) -> etree._Element:
    """The t:TimeZone exchangelib puts in GetUserAvailability for this server zone (see its get_payload)."""
    timezone = TimeZone.from_server_timezone(tz_definition=_definition(ms_id), for_year=year)
    payload = create_element("m:GetUserAvailabilityRequest")
    set_xml_value(payload, timezone, version=VERSION)
    # A serialise/parse round trip gives real namespaced elements, as the server would receive them.
    return etree.fromstring(etree.tostring(payload))[0]


def _rule_moment(rule: StandardTime | DaylightTime, year: int) -> datetime:
    """Independent reading of a Windows rule: n-th (5 = last) weekday of the month at a wall time."""
    month_days = calendar.monthrange(year, rule.iso_month)[1]
    weekday = rule.weekday - 1  # exchangelib keeps DayOfWeek as an ISO number, 7 = Sunday
    days = [d for d in range(1, month_days + 1) if date(year, rule.iso_month, d).weekday() == weekday]
    day = days[-1] if rule.occurrence == 5 else days[rule.occurrence - 1]
    return datetime.combine(date(year, rule.iso_month, day), rule.time)


def _offset(zi: ZoneInfo, utc: datetime) -> timedelta:
    offset = utc.astimezone(zi).utcoffset()
    assert offset is not None
    return offset


# ---------------------------------------------------------------------------------------------
# Ids and zones


def test_ids_are_sorted_include_utc_and_load() -> None:
    ids = tz.all_ids()
    assert ids == sorted(ids)
    assert len(ids) > 100
    assert "UTC" in ids
    assert set(SAMPLE_ZONES) <= set(ids)
    for ms_id in ids:
        assert isinstance(tz.zone(ms_id), ZoneInfo)


def test_zone_maps_to_cldr_iana_zone() -> None:
    assert tz.zone("W. Europe Standard Time").key == "Europe/Berlin"
    assert tz.zone("Eastern Standard Time").key == "America/New_York"
    assert _offset(tz.zone("UTC"), datetime(2025, 7, 1, tzinfo=UTC)) == timedelta(0)


def test_unknown_id_raises() -> None:
    with pytest.raises(UnknownTimeZoneError):
        tz.zone("Mars Standard Time")
    with pytest.raises(UnknownTimeZoneError):
        tz.definition_xml("Mars Standard Time", True)
    with pytest.raises(KeyError):  # callers may catch it as a lookup failure
        tz.definition_xml("Mars Standard Time", False)


# ---------------------------------------------------------------------------------------------
# TimeZoneDefinition XML


def test_short_definition_has_only_id_and_name() -> None:
    elem = _element("W. Europe Standard Time", full=False)
    assert elem.get("Id") == "W. Europe Standard Time"
    assert elem.get("Name") == "(UTC+01:00) W. Europe Standard Time"
    assert len(elem) == 0
    assert _element("UTC", full=False).get("Name") == "(UTC) Coordinated Universal Time"


def test_definitions_are_cached() -> None:
    first = tz.definition_xml("Eastern Standard Time", True)
    assert tz.definition_xml("Eastern Standard Time", True) is first


def test_fragment_declares_no_namespace() -> None:
    assert "xmlns" not in tz.definition_xml("AUS Eastern Standard Time", True)


def test_w_europe_is_written_like_exchange() -> None:
    elem = _element("W. Europe Standard Time")
    periods = elem.findall(f"{{{T}}}Periods/{{{T}}}Period")
    assert [(p.get("Name"), p.get("Bias")) for p in periods] == [("Standard", "-PT1H"), ("Daylight", "-PT2H")]
    assert periods[0].get("Id") == "trule:Microsoft/Registry/W. Europe Standard Time/2000-Standard"
    groups = elem.findall(f"{{{T}}}TransitionsGroups/{{{T}}}TransitionsGroup")
    assert [g.get("Id") for g in groups] == ["0"]
    rules = [
        (
            r.findtext(f"{{{T}}}To"),
            r.find(f"{{{T}}}To").get("Kind"),
            r.findtext(f"{{{T}}}TimeOffset"),
            r.findtext(f"{{{T}}}Month"),
            r.findtext(f"{{{T}}}DayOfWeek"),
            r.findtext(f"{{{T}}}Occurrence"),
        )
        for r in groups[0]
    ]
    assert rules == [
        (periods[1].get("Id"), "Period", "PT2H", "3", "Sunday", "-1"),
        (periods[0].get("Id"), "Period", "PT3H", "10", "Sunday", "-1"),
    ]
    transitions = elem.find(f"{{{T}}}Transitions")
    assert [etree.QName(t).localname for t in transitions] == ["Transition"]
    assert transitions[0].findtext(f"{{{T}}}To") == "0"
    assert transitions[0].find(f"{{{T}}}To").get("Kind") == "Group"


@pytest.mark.parametrize(
    ("ms_id", "bias"),
    [
        ("UTC", "PT0H"),
        ("W. Europe Standard Time", "-PT1H"),
        ("Eastern Standard Time", "PT5H"),
        ("India Standard Time", "-PT5H30M"),
        ("Newfoundland Standard Time", "PT3H30M"),
        ("Nepal Standard Time", "-PT5H45M"),
    ],
)
def test_standard_bias_is_negated_offset(ms_id: str, bias: str) -> None:
    periods = _element(ms_id).findall(f"{{{T}}}Periods/{{{T}}}Period[@Name='Standard']")
    assert periods[-1].get("Bias") == bias


def test_zone_without_dst_has_single_period_transition() -> None:
    elem = _element("India Standard Time")
    (group,) = elem.findall(f"{{{T}}}TransitionsGroups/{{{T}}}TransitionsGroup")
    (transition,) = list(group)
    assert etree.QName(transition).localname == "Transition"
    assert transition.find(f"{{{T}}}To").get("Kind") == "Period"
    assert transition.findtext(f"{{{T}}}To") == elem.find(f"{{{T}}}Periods/{{{T}}}Period").get("Id")


def test_rule_change_adds_group_with_absolute_date() -> None:
    elem = _element("Eastern Standard Time")
    groups = elem.findall(f"{{{T}}}TransitionsGroups/{{{T}}}TransitionsGroup")
    assert [g.get("Id") for g in groups] == ["0", "1"]
    months = [g.findtext(f"{{{T}}}RecurringDayTransition/{{{T}}}Month") for g in groups]
    assert months == ["4", "3"]  # first Sunday of April until 2006, second Sunday of March since
    transitions = list(elem.find(f"{{{T}}}Transitions"))
    assert [etree.QName(t).localname for t in transitions] == ["Transition", "AbsoluteDateTransition"]
    assert transitions[1].findtext(f"{{{T}}}To") == "1"
    assert transitions[1].findtext(f"{{{T}}}DateTime") == "2007-01-01T00:00:00"


def test_many_groups_keep_string_order_equal_to_year_order() -> None:
    # exchangelib sorts transitions by the group id *string*; see TimeZoneDefinition._get_transitions_group.
    for ms_id in tz.all_ids():
        targets = [t.findtext(f"{{{T}}}To") for t in _element(ms_id).find(f"{{{T}}}Transitions")]
        assert targets == sorted(targets), ms_id
        assert len(set(map(len, targets))) == 1, ms_id


def test_every_definition_is_schema_valid() -> None:
    schema_dir = _schema_dir()
    if not (schema_dir / "messages.xsd").is_file():
        pytest.skip(f"EWS schemas not found at {schema_dir} (set DOWNSYNC_EWS_SCHEMA_DIR)")
    schema = _schema()
    for full in (False, True):
        response = _response([tz.definition_xml(ms_id, full) for ms_id in tz.all_ids()])
        assert schema.validate(response), f"full={full}: {schema.error_log}"
    # The check has teeth: a definition missing the required To Kind is rejected.
    broken = tz.definition_xml("W. Europe Standard Time", True).replace(' Kind="Group"', "", 1)
    assert not schema.validate(_response([broken]))


# ---------------------------------------------------------------------------------------------
# exchangelib's reading of the definitions


@pytest.mark.parametrize(
    ("ms_id", "bias", "daylight", "standard"),
    [
        ("UTC", 0, None, None),
        ("India Standard Time", -330, None, None),
        ("Tokyo Standard Time", -540, None, None),
        ("W. Europe Standard Time", -60, (3, 5, "Sunday", time(2)), (10, 5, "Sunday", time(3))),
        ("GMT Standard Time", 0, (3, 5, "Sunday", time(1)), (10, 5, "Sunday", time(2))),
        ("Eastern Standard Time", 300, (3, 2, "Sunday", time(2)), (11, 1, "Sunday", time(2))),
        ("Pacific Standard Time", 480, (3, 2, "Sunday", time(2)), (11, 1, "Sunday", time(2))),
        ("AUS Eastern Standard Time", -600, (10, 1, "Sunday", time(2)), (4, 1, "Sunday", time(3))),
    ],
)
def test_exchangelib_reads_current_rules(
    ms_id: str,
    bias: int,
    daylight: tuple[int, int, str, time] | None,
    standard: tuple[int, int, str, time] | None,
) -> None:
    for year in YEARS:
        std, dst, period = _definition(ms_id).get_std_and_dst(for_year=year)
        timezone = TimeZone.from_server_timezone(tz_definition=_definition(ms_id), for_year=year)
        assert period.bias_in_minutes == bias == timezone.bias
        assert timezone.standard_time == std and timezone.daylight_time == dst
        if daylight is None:
            # exchangelib's stand-in for a zone without DST: both rules with zero bias.
            assert std.bias == dst.bias == 0
            continue
        assert (dst.iso_month, dst.occurrence, WEEKDAYS[dst.weekday - 1], dst.time) == daylight
        assert (std.iso_month, std.occurrence, WEEKDAYS[std.weekday - 1], std.time) == standard
        assert dst.bias == -60 and std.bias == 0


@pytest.mark.parametrize("ms_id", tz.all_ids())
def test_exchangelib_rules_match_zoneinfo(ms_id: str) -> None:
    zi = tz.zone(ms_id)
    definition = _definition(ms_id)
    for year in YEARS:
        timezone = TimeZone.from_server_timezone(tz_definition=definition, for_year=year)
        std_offset = timedelta(minutes=-timezone.bias)
        dst_offset = timedelta(minutes=-timezone.bias - timezone.daylight_time.bias)
        mid_year = (datetime(year, 1, 15, 12, tzinfo=UTC), datetime(year, 7, 15, 12, tzinfo=UTC))
        assert {_offset(zi, moment) for moment in mid_year} <= {std_offset, dst_offset}
        if std_offset == dst_offset:
            continue
        # Daylight starts at its rule in local standard time, and ends at the standard rule in daylight time.
        # A rule at the very start or end of the year stands for "already/still in force" in a
        # year whose base offset changed for good; nothing happens on the clock there.
        edges = (datetime(year, 1, 1), datetime(year, 12, 31, 23, 59, 59))
        dst_start = _rule_moment(timezone.daylight_time, year)
        dst_end = _rule_moment(timezone.standard_time, year)
        checks = (
            (dst_start - std_offset, std_offset, dst_offset),
            (dst_end - dst_offset, dst_offset, std_offset),
        )
        for (moment, before, after), wall in zip(checks, (dst_start, dst_end), strict=True):
            if wall in edges:
                continue
            moment = moment.replace(tzinfo=UTC)
            assert _offset(zi, moment - timedelta(seconds=1)) == before, (year, moment)
            assert _offset(zi, moment) == after, (year, moment)


# ---------------------------------------------------------------------------------------------
# LegacyTimeZone


def _samples(year: int) -> list[datetime]:
    # Skip Jan 1 and Dec 31: a rule taken for one year says nothing reliable about the next.
    return [
        datetime(year, month, day, hour, 17, tzinfo=UTC)
        for month in range(1, 13)
        for day in (9, 24)
        for hour in (1, 13)
    ]


@pytest.mark.parametrize("ms_id", tz.all_ids())
def test_legacy_timezone_round_trips_like_zoneinfo(ms_id: str) -> None:
    zi = tz.zone(ms_id)
    for year in YEARS:
        legacy = LegacyTimeZone.from_element(_legacy_xml(ms_id, year))
        for moment in _samples(year):
            local = moment.astimezone(zi).replace(tzinfo=None, fold=0)
            assert legacy.from_utc(moment) == local, (year, moment)
            assert legacy.to_utc(local) == local.replace(tzinfo=zi).astimezone(UTC), (year, moment)


@pytest.mark.parametrize(
    ("ms_id", "winter", "summer"),
    [
        ("W. Europe Standard Time", timedelta(hours=1), timedelta(hours=2)),
        ("Eastern Standard Time", timedelta(hours=-5), timedelta(hours=-4)),
        ("AUS Eastern Standard Time", timedelta(hours=11), timedelta(hours=10)),  # January is summer there
        ("India Standard Time", timedelta(hours=5, minutes=30), timedelta(hours=5, minutes=30)),
        ("UTC", timedelta(0), timedelta(0)),
    ],
)
def test_legacy_timezone_winter_and_summer(ms_id: str, winter: timedelta, summer: timedelta) -> None:
    for year in (2020, 2025, 2030):
        legacy = LegacyTimeZone.from_element(_legacy_xml(ms_id, year))
        january, july = datetime(year, 1, 20, 10, 0), datetime(year, 7, 20, 10, 0)
        assert legacy.to_utc(january) == (january - winter).replace(tzinfo=UTC)
        assert legacy.to_utc(july) == (july - summer).replace(tzinfo=UTC)
        assert legacy.from_utc((january - winter).replace(tzinfo=UTC)) == january
        assert legacy.from_utc((july - summer).replace(tzinfo=UTC)) == july


def test_legacy_timezone_gap_and_overlap_follow_zoneinfo_fold_0() -> None:
    legacy = LegacyTimeZone.from_element(_legacy_xml("W. Europe Standard Time", 2025))
    # 02:30 does not exist on 2025-03-30: read in standard time, like zoneinfo.
    assert legacy.to_utc(datetime(2025, 3, 30, 2, 30)) == datetime(2025, 3, 30, 1, 30, tzinfo=UTC)
    # 02:30 happens twice on 2025-10-26: the first (daylight) one.
    assert legacy.to_utc(datetime(2025, 10, 26, 2, 30)) == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)
    assert legacy.from_utc(datetime(2025, 10, 26, 0, 59, 59, tzinfo=UTC)) == datetime(2025, 10, 26, 2, 59, 59)
    assert legacy.from_utc(datetime(2025, 10, 26, 1, 0, tzinfo=UTC)) == datetime(2025, 10, 26, 2, 0)
    assert legacy.from_utc(datetime(2025, 3, 30, 0, 59, 59, tzinfo=UTC)) == datetime(2025, 3, 30, 1, 59, 59)
    assert legacy.from_utc(datetime(2025, 3, 30, 1, 0, tzinfo=UTC)) == datetime(2025, 3, 30, 3, 0)


def _handwritten(body: str) -> etree._Element:
    return etree.fromstring(f'<t:TimeZone xmlns:t="{T}">{body}</t:TimeZone>')


def _rule_xml(name: str, bias: int, clock: str, order: int, month: int, weekday: str) -> str:
    return (
        f"<t:{name}><t:Bias>{bias}</t:Bias><t:Time>{clock}</t:Time><t:DayOrder>{order}</t:DayOrder>"
        f"<t:Month>{month}</t:Month><t:DayOfWeek>{weekday}</t:DayOfWeek></t:{name}>"
    )


def test_legacy_timezone_from_handwritten_element() -> None:
    # US rules as Outlook sends them: Bias 300, DST from the 2nd Sunday of March, back on the 1st of November.
    elem = _handwritten(
        "<t:Bias>300</t:Bias>"
        + _rule_xml("StandardTime", 0, "02:00:00", 1, 11, "Sunday")
        + _rule_xml("DaylightTime", -60, "02:00:00", 2, 3, "Sunday")
    )
    legacy = LegacyTimeZone.from_element(elem)
    assert legacy.to_utc(datetime(2024, 3, 10, 1, 59)) == datetime(2024, 3, 10, 6, 59, tzinfo=UTC)
    assert legacy.to_utc(datetime(2024, 3, 10, 3, 0)) == datetime(2024, 3, 10, 7, 0, tzinfo=UTC)
    assert legacy.from_utc(datetime(2024, 11, 3, 5, 59, tzinfo=UTC)) == datetime(2024, 11, 3, 1, 59)
    assert legacy.from_utc(datetime(2024, 11, 3, 6, 0, tzinfo=UTC)) == datetime(2024, 11, 3, 1, 0)


def test_legacy_timezone_day_order_5_is_last_and_bias_only_zone() -> None:
    elem = _handwritten(
        "<t:Bias>-60</t:Bias>"
        + _rule_xml("StandardTime", 0, "03:00:00", 5, 10, "Sunday")
        + _rule_xml("DaylightTime", -60, "02:00:00", 5, 3, "Sunday")
    )
    legacy = LegacyTimeZone.from_element(elem)
    # March 2026 has Sundays on the 1st, ..., 29th: the last one, not the "5th" of a 4-Sunday month.
    assert legacy.from_utc(datetime(2026, 3, 29, 0, 59, tzinfo=UTC)) == datetime(2026, 3, 29, 1, 59)
    assert legacy.from_utc(datetime(2026, 3, 29, 1, 0, tzinfo=UTC)) == datetime(2026, 3, 29, 3, 0)
    # And in 2027 the last Sunday of March is the 28th (a 4th Sunday).
    assert legacy.from_utc(datetime(2027, 3, 28, 1, 0, tzinfo=UTC)) == datetime(2027, 3, 28, 3, 0)

    fixed = LegacyTimeZone.from_element(_handwritten("<t:Bias>-330</t:Bias>"))
    assert fixed.to_utc(datetime(2025, 7, 1, 12, 0)) == datetime(2025, 7, 1, 6, 30, tzinfo=UTC)
    assert fixed.from_utc(datetime(2025, 7, 1, 6, 30, tzinfo=UTC)) == datetime(2025, 7, 1, 12, 0)


def test_legacy_timezone_rejects_bad_elements() -> None:
    with pytest.raises(ValueError):
        LegacyTimeZone.from_element(_handwritten(""))
    with pytest.raises(ValueError):
        LegacyTimeZone.from_element(
            _handwritten(
                "<t:Bias>0</t:Bias>"
                + _rule_xml("StandardTime", 0, "02:00:00", 6, 10, "Sunday")
                + _rule_xml("DaylightTime", -60, "02:00:00", 1, 3, "Sunday")
            )
        )
    with pytest.raises(ValueError):
        LegacyTimeZone.from_element(
            _handwritten(
                "<t:Bias>0</t:Bias>"
                + _rule_xml("StandardTime", 0, "02:00:00", 1, 10, "Weekday")
                + _rule_xml("DaylightTime", -60, "02:00:00", 1, 3, "Sunday")
            )
        )

"""OData query options compiled against stored items."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ews_sim.graph.errors import GraphError
from ews_sim.graph.query import compile_filter, order, parse_expand, parse_select
from ews_sim.store import CalendarItem, ExtendedValue, ext_key
from tests.ews_sim.graph.support import EVENT_ID, PROP_SET

COUNT = f"Integer {{{PROP_SET}}} Name Count"


def item(subject: str, hour: int, **extended: str) -> CalendarItem:
    found = CalendarItem(
        item_id=subject,
        mailbox="a@b.c",
        uid=subject,
        start=datetime(2030, 1, 7, hour, tzinfo=UTC),
        end=datetime(2030, 1, 7, hour + 1, tzinfo=UTC),
        subject=subject,
        categories=["Red"] if hour % 2 else [],
    )
    for name, value in extended.items():
        attrs = {"PropertySetId": PROP_SET, "PropertyName": name, "PropertyType": "String"}
        found.extended[ext_key(attrs)] = ExtendedValue(attrs, value)
    return found


ITEMS = [
    item("Alpha", 8, DownsyncEventId="SF-1", Count="9"),
    item("beta", 9, DownsyncEventId="sf-2", Count="10"),
    item("Gamma", 10),
]


def matching(flt: str) -> list[str]:
    predicate = compile_filter(flt)
    return [i.subject for i in ITEMS if predicate(i)]


@pytest.mark.parametrize(
    ("flt", "subjects"),
    [
        (f"singleValueExtendedProperties/any(ep: ep/id eq '{EVENT_ID}' and ep/value eq 'SF-2')", ["beta"]),
        (f"singleValueExtendedProperties/Any(e: e/value eq 'sf-1' and e/id eq '{EVENT_ID}')", ["Alpha"]),
        (f"singleValueExtendedProperties/any(ep: ep/id eq '{EVENT_ID}' and ep/value ne 'sf-1')", ["beta"]),
        (
            f"singleValueExtendedProperties/any(ep: ep/id eq '{EVENT_ID}' and startswith(ep/value, 'SF'))",
            ["Alpha", "beta"],
        ),
        # An Integer property compares as a number: 9 < 10, though '9' > '10' as text.
        (f"singleValueExtendedProperties/any(ep: ep/id eq '{COUNT}' and ep/value lt '10')", ["Alpha"]),
        ("subject eq 'GAMMA' or subject eq 'alpha'", ["Alpha", "Gamma"]),
        ("not (subject eq 'beta') and start/dateTime lt '2030-01-07T10:00:00Z'", ["Alpha"]),
        ("categories/any(c: c eq 'red')", ["beta"]),
        ("contains(subject, 'MM')", ["Gamma"]),
        ("start/dateTime ge 2030-01-07T09:00:00Z", ["beta", "Gamma"]),
        ("transactionId eq null", ["Alpha", "beta", "Gamma"]),
        ("transactionId ne 'x'", []),  # as Exchange: a missing property fails every comparison
    ],
)
def test_filters(flt: str, subjects: list[str]) -> None:
    assert matching(flt) == subjects


@pytest.mark.parametrize(
    ("flt", "code"),
    [
        ("subject eq 'x' and", "BadRequest"),
        ("subject eq 'unterminated", "BadRequest"),
        ("(subject eq 'x'", "BadRequest"),
        ("colour eq 'red'", "BadRequest"),
        ("'x' eq 'y'", "ErrorInvalidUrlQueryFilter"),
        ("singleValueExtendedProperties/any(ep: ep/value eq 'x')", "ErrorInvalidUrlQueryFilter"),
        (
            f"singleValueExtendedProperties/all(ep: ep/id eq '{EVENT_ID}' and ep/value eq 'x')",
            "ErrorInvalidUrlQueryFilter",
        ),
        (
            f"singleValueExtendedProperties/any(ep: ep/id ne '{EVENT_ID}' and ep/value eq 'x')",
            "ErrorInvalidUrlQueryFilter",
        ),
    ],
)
def test_filters_refused(flt: str, code: str) -> None:
    with pytest.raises(GraphError) as caught:
        compile_filter(flt)
    assert (caught.value.status, caught.value.code) == (400, code)


def test_expand_select_and_order() -> None:
    assert parse_expand(f"singleValueExtendedProperties($filter=id eq '{EVENT_ID}' or id eq '{COUNT}')") == {
        "singleValueExtendedProperties": [EVENT_ID, COUNT]
    }
    assert parse_expand("singlevalueextendedproperties,multiValueExtendedProperties") == {
        "singleValueExtendedProperties": None,
        "multiValueExtendedProperties": None,
    }
    with pytest.raises(GraphError, match="BadRequest"):
        parse_expand("attachments")
    assert parse_select("SUBJECT, start", {"subject", "start", "end"}) == {"subject", "start"}
    assert [i.subject for i in order(ITEMS, "start/dateTime desc")] == ["Gamma", "beta", "Alpha"]
    assert [i.subject for i in order(ITEMS, "subject")] == ["Alpha", "beta", "Gamma"]

"""The document says exactly what the validators take: for every shared field type, a string matches the schema's
pattern if and only if the validator accepts it (times: unless it names no calendar time, which no pattern can say)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from api_shim import fields

TYPES = {
    "Email": fields.Email,
    "EventId": fields.EventId,
    "CorrelationId": fields.CorrelationId,
    "UtcTime": fields.UtcTime,
}


ADAPTERS = {id(kind): TypeAdapter(kind) for kind in [*TYPES.values(), fields.Bool]}


def pattern_of(kind: Any) -> re.Pattern[str]:
    return re.compile(ADAPTERS[id(kind)].json_schema()["pattern"])


def accepts(kind: Any, value: str) -> bool:
    try:
        ADAPTERS[id(kind)].validate_python(value)
    except ValidationError:
        return False
    return True


def texts(pattern: re.Pattern[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=40), st.from_regex(pattern, fullmatch=True), st.from_regex(pattern).map(lambda s: s[:-1])
    )


@pytest.mark.parametrize("name", sorted(TYPES))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_schema_and_validator_agree(name: str, data: st.DataObject) -> None:
    kind = TYPES[name]
    pattern = pattern_of(kind)
    value = data.draw(texts(pattern))
    matches = pattern.match(value) is not None
    if name == "UtcTime" and matches:
        # A pattern cannot know 30 February or an offset that leaves the allowed years: those may be refused.
        return
    assert matches == accepts(kind, value), (name, value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_booleans_agree(value: str) -> None:
    string_form = re.compile(fields.BOOL_SCHEMA["anyOf"][1]["pattern"])
    assert (string_form.match(value) is not None) == accepts(fields.Bool, value)


def test_the_years_pattern_is_exact() -> None:
    years = re.compile(f"^{fields._years(1995, 2031)}$")
    assert [y for y in range(1000, 3000) if years.match(f"{y:04d}")] == list(range(1995, 2032))

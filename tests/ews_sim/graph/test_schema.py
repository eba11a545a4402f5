"""Strict Graph: requests refused as Graph's OData reader refuses them, responses checked against Microsoft's CSDL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from ews_sim.graph import json as graph_json
from ews_sim.graph import schema as graph_schema_module
from ews_sim.graph.schema import CSDL_FILE, GraphSchema, default_graph_schema_dir
from ews_sim.testing import SimClient
from tests.ews_sim.graph.support import ALICE, BOB, error, event

SCHEMA_DIR = default_graph_schema_dir()
pytestmark = pytest.mark.skipif(
    SCHEMA_DIR is None,
    reason="Graph CSDL (../shared/graph-schema/v1.0-Prod.csdl or DOWNSYNC_GRAPH_SCHEMA_DIR) is absent: "
    "Graph strictness is not checked",
)
UNDECLARED = (
    "The property 'colour' does not exist on type 'microsoft.graph.event'. Make sure to only use property names "
    "that are defined by the type or mark the type as open type."
)


@pytest.fixture(scope="module")
def schema() -> GraphSchema:
    assert SCHEMA_DIR is not None
    return GraphSchema.load(SCHEMA_DIR)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (event(colour="red"), UNDECLARED),
        (event(isAllDay="yes"), "Cannot convert the literal 'yes' to the expected type 'Edm.Boolean'."),
        (event(showAs="bussy"), "Requested value 'bussy' was not found."),
        (event(reminderMinutesBeforeStart=[15]), "An unexpected 'StartArray' node was found for property named"),
        (event(location="Room 4"), "A 'StartObject' node was expected."),
        (
            event() | {"attendees": [{"emailAddress": {"address": BOB, "display": "Bob"}}]},
            "The property 'display' does",
        ),
        (event() | {"start": {"dateTime": None, "timeZone": "UTC"}}, "A null value was found for the property named"),
        (event(singleValueExtendedProperties=[{"id": "String {x} Name y", "value": 3}]), "'Edm.String'"),
    ],
)
def test_a_body_the_schema_refuses_is_request_body_read(
    sim: SimClient, graph: httpx.Client, body: dict[str, Any], message: str
) -> None:
    status, code, text = error(graph.post(f"/users/{ALICE}/events", json=body))
    assert (status, code) == (400, "RequestBodyRead") and message in text
    assert sim.calendar(ALICE) == []


def test_property_names_and_enum_members_are_read_case_insensitively(graph: httpx.Client) -> None:
    body = {
        "Subject": "Caps",
        "Start": {"DateTime": "2030-01-07T09:00:00", "TimeZone": "UTC"},
        "END": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
        "ShowAs": "Free",
        "@odata.type": "#microsoft.graph.event",
    }
    created = graph.post(f"/users/{ALICE}/events", json=body)
    assert created.status_code == 201, created.text
    assert (created.json()["subject"], created.json()["showAs"]) == ("Caps", "free")


def test_action_parameters_are_checked_too(graph: httpx.Client) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event(attendees=[BOB])).json()
    refused = graph.post(f"/users/{ALICE}/events/{created['id']}/cancel", json={"reason": "x"})
    assert error(refused)[:2] == (400, "RequestBodyRead")
    assert "'reason' in the request payload is not a valid parameter for the operation 'cancel'" in error(refused)[2]
    body = {"schedules": ALICE, "startTime": {"dateTime": "2030-01-07T09:00:00"}}
    assert error(graph.post(f"/users/{ALICE}/calendar/getSchedule", json=body))[:2] == (400, "RequestBodyRead")


def test_a_response_that_breaks_the_schema_is_recorded(
    sim: SimClient, graph: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = graph.post(f"/users/{ALICE}/events", json=event()).json()
    monkeypatch.setitem(graph_json.SHOW_AS, "Busy", "Busy")  # Graph writes enum members as declared: "busy"
    assert graph.get(f"/users/{ALICE}/events/{created['id']}").status_code == 200
    [problem] = sim.schema_errors()
    assert (
        problem["operation"] == "graph.getEvent"
        and problem["problem"] == "showAs: Requested value 'Busy' was not found."
    )
    sim.reset()  # the fixture would fail the test for it


def test_the_schema_reports_every_problem_of_a_response_with_its_path(schema: GraphSchema) -> None:
    body = {
        "value": [
            {"scheduleId": "a", "scheduleItems": [{"status": "Busy", "start": {"dateTime": None}}], "colour": 1},
            {"scheduleId": 7},
        ]
    }
    problems = [str(p) for p in schema.check_response("Collection(graph.scheduleInformation)", body)]
    assert problems == [
        "value[0].scheduleItems[0].status: Requested value 'Busy' was not found.",
        "value[0].scheduleItems[0].start.dateTime: A null value was found for the property named 'dateTime', which "
        "has the expected type 'Edm.String[Nullable=False]'. The expected type does not allow null values.",
        "value[0].colour: The property 'colour' does not exist on type 'microsoft.graph.scheduleInformation'. Make "
        "sure to only use property names that are defined by the type or mark the type as open type.",
        "value[1].scheduleId: Cannot convert the literal '7' to the expected type 'Edm.String'.",
    ]
    assert schema.check_response("graph.event", {"@odata.context": "x", "value": []}) != []


def test_derived_types_inheritance_and_annotations(schema: GraphSchema) -> None:
    assert {"id", "changeKey", "categories", "subject"} <= set(schema.properties("graph.event"))
    assert schema.derives_from("microsoft.graph.event", "graph.entity")
    custom = {"name": "Custom", "@odata.type": "#microsoft.graph.customTimeZone", "bias": 480}
    assert schema.check_response("graph.timeZoneBase", custom) == []
    assert schema.check_response("graph.timeZoneBase", {"name": "x", "bias": 480}) != []


def test_the_csdl_is_found_beside_the_checkout_or_where_the_setting_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert SCHEMA_DIR is not None
    (tmp_path / CSDL_FILE).symlink_to(SCHEMA_DIR / CSDL_FILE)
    monkeypatch.setenv("DOWNSYNC_GRAPH_SCHEMA_DIR", str(tmp_path))
    assert default_graph_schema_dir() == tmp_path
    assert GraphSchema.load(tmp_path) is GraphSchema.load(tmp_path)  # parsed once
    # A setting naming a folder without the CSDL falls back to the folder beside the checkout, if that has it.
    monkeypatch.setenv("DOWNSYNC_GRAPH_SCHEMA_DIR", str(tmp_path / "missing"))
    beside = Path(graph_schema_module.__file__).resolve().parents[3] / "shared" / "graph-schema"
    assert default_graph_schema_dir() == (beside if (beside / CSDL_FILE).is_file() else None)

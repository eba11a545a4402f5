"""Recurring events through Graph, and the same series through EWS (the real exchangelib)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
from exchangelib import CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.recurrence import Recurrence, WeeklyPattern

from ews_sim.graph.json import rest_id
from ews_sim.testing import SimClient
from tests.ews_sim.conftest import Connect
from tests.ews_sim.graph.support import ALICE, BOB, error, event

WEEKLY: dict[str, Any] = {
    "pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday", "wednesday"], "firstDayOfWeek": "monday"},
    "range": {"type": "numbered", "startDate": "2030-01-07", "numberOfOccurrences": 4},
}
VIEW = "startDateTime=2030-01-06T00:00:00Z&endDateTime=2030-01-31T00:00:00Z"


def starts(events: list[dict[str, Any]]) -> list[str]:
    return [e["start"]["dateTime"][:16] for e in events]


def test_a_recurring_event_is_a_series_master_expanded_by_calendar_view(sim: SimClient, graph: httpx.Client) -> None:
    created = graph.post(
        f"/users/{ALICE}/events",
        json=event(start="2030-01-07T09:00:00", zone="W. Europe Standard Time", recurrence=WEEKLY),
    )
    assert created.status_code == 201
    master = created.json()
    assert master["type"] == "seriesMaster" and master["seriesMasterId"] is None
    assert master["recurrence"]["pattern"]["daysOfWeek"] == ["monday", "wednesday"]
    assert master["recurrence"]["range"] | {"recurrenceTimeZone": None} == {
        "type": "numbered",
        "startDate": "2030-01-07",
        "endDate": "0001-01-01",
        "numberOfOccurrences": 4,
        "recurrenceTimeZone": None,
    }
    # /events lists the master only; calendarView its occurrences.
    assert [e["type"] for e in graph.get(f"/users/{ALICE}/events").json()["value"]] == ["seriesMaster"]
    shown = graph.get(f"/users/{ALICE}/calendarView?{VIEW}").json()["value"]
    assert starts(shown) == ["2030-01-07T08:00", "2030-01-09T08:00", "2030-01-14T08:00", "2030-01-16T08:00"]
    assert {e["type"] for e in shown} == {"occurrence"} and {e["seriesMasterId"] for e in shown} == {master["id"]}
    assert shown[0]["originalStart"] == "2030-01-07T08:00:00Z" and shown[0]["recurrence"] is None
    instances = graph.get(f"/users/{ALICE}/events/{master['id']}/instances?{VIEW}").json()["value"]
    assert [e["id"] for e in instances] == [e["id"] for e in shown]


def test_occurrences_changed_and_deleted_through_graph(sim: SimClient, graph: httpx.Client, connect: Connect) -> None:
    master = graph.post(f"/users/{ALICE}/events", json=event(recurrence=WEEKLY)).json()
    first, second, third, _ = graph.get(f"/users/{ALICE}/calendarView?{VIEW}").json()["value"]
    moved = graph.patch(
        f"/users/{ALICE}/events/{second['id']}",
        json={
            "subject": "moved",
            "start": {"dateTime": "2030-01-09T15:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-09T16:00:00", "timeZone": "UTC"},
        },
    )
    assert moved.status_code == 200 and moved.json()["type"] == "exception"
    assert graph.delete(f"/users/{ALICE}/events/{third['id']}").status_code == 204
    shown = graph.get(f"/users/{ALICE}/calendarView?{VIEW}").json()["value"]
    assert [(e["type"], e["subject"]) for e in shown] == [
        ("occurrence", "Graph test"),
        ("exception", "moved"),
        ("occurrence", "Graph test"),
    ]
    assert error(graph.get(f"/users/{ALICE}/events/{third['id']}"))[:2] == (404, "ErrorItemNotFound")
    # EWS sees the same series, exception and deletion.
    alice = connect(ALICE)
    ews_master = alice.calendar.get(id=master["id"].replace("-", "/").replace("_", "+"))
    assert ews_master.type == "RecurringMaster" and len(ews_master.modified_occurrences) == 1
    assert len(ews_master.deleted_occurrences) == 1
    assert graph.get(f"/users/{ALICE}/events/{first['id']}").json()["type"] == "occurrence"


def test_a_series_made_through_ews_shows_in_graph_views_and_schedules(
    sim: SimClient, graph: httpx.Client, connect: Connect
) -> None:
    alice = connect(ALICE)
    utc = EWSTimeZone("UTC")
    start = EWSDateTime(2030, 1, 7, 9, tzinfo=utc)
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="standup",
        start=start,
        end=start + dt.timedelta(minutes=30),
        recurrence=Recurrence(pattern=WeeklyPattern(interval=1, weekdays=[1, 3]), start=start.date()),  # no end
    )
    item.save(send_meeting_invitations="SendToNone")
    shown = graph.get(f"/users/{ALICE}/calendarView?{VIEW}").json()["value"]
    assert len(shown) == 8 and {e["seriesMasterId"] for e in shown} == {rest_id(item.id)}
    schedule = graph.post(
        f"/users/{BOB}/calendar/getSchedule",
        json={
            "schedules": [ALICE],
            "startTime": {"dateTime": "2030-01-07T00:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2030-01-10T00:00:00", "timeZone": "UTC"},
            "availabilityViewInterval": 60,
        },
    ).json()["value"][0]
    assert [(i["start"]["dateTime"][:16], i["status"]) for i in schedule["scheduleItems"]] == [
        ("2030-01-07T09:00", "busy"),
        ("2030-01-09T09:00", "busy"),
    ]
    assert schedule["availabilityView"][9] == "2" and schedule["availabilityView"][24 + 9] == "0"


def test_an_event_ending_where_the_view_starts_is_in_the_view(sim: SimClient, graph: httpx.Client) -> None:
    graph.post(f"/users/{ALICE}/events", json=event(subject="ends at the start", start="2030-01-05T23:00:00"))
    graph.post(f"/users/{ALICE}/events", json=event(subject="starts at the end", start="2030-01-31T00:00:00"))
    shown = graph.get(f"/users/{ALICE}/calendarView?{VIEW}").json()["value"]
    assert [e["subject"] for e in shown] == ["ends at the start"]


def test_a_recurring_meeting_answered_and_one_occurrence_cancelled(sim: SimClient, graph: httpx.Client) -> None:
    master = graph.post(f"/users/{ALICE}/events", json=event(recurrence=WEEKLY, attendees=[BOB])).json()
    bobs = graph.get(f"/users/{BOB}/calendarView?{VIEW}").json()["value"]
    assert [e["type"] for e in bobs] == ["occurrence"] * 4
    # Answering an occurrence answers the series.
    assert graph.post(f"/users/{BOB}/events/{bobs[1]['id']}/accept", json={}).status_code == 202
    organizer = graph.get(f"/users/{ALICE}/events/{master['id']}").json()
    assert [a["status"]["response"] for a in organizer["attendees"]] == ["accepted"]
    second = graph.get(f"/users/{ALICE}/calendarView?{VIEW}").json()["value"][1]
    assert graph.post(f"/users/{ALICE}/events/{second['id']}/cancel", json={}).status_code == 202
    assert len(graph.get(f"/users/{ALICE}/calendarView?{VIEW}").json()["value"]) == 3
    bobs = graph.get(f"/users/{BOB}/calendarView?{VIEW}").json()["value"]
    assert [(e["type"], e["isCancelled"], e["showAs"]) for e in bobs] == [
        ("occurrence", False, "busy"),
        ("exception", True, "free"),
        ("occurrence", False, "busy"),
        ("occurrence", False, "busy"),
    ]
    assert [(m["kind"], m["start"]) for m in sim.messages(to=BOB)] == [
        ("request", "2030-01-07T09:00:00Z"),
        ("cancel", "2030-01-09T09:00:00Z"),
    ]

"""calendar: getSchedule through httpx: shapes, time zones, limits, per-schedule errors, and its cost."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ews_sim.testing import ON_PREMISES_MAILBOX, SimClient
from tests.ews_sim.graph.support import ALICE, BOB, error

URL = f"/users/{ALICE}/calendar/getSchedule"


def window(start: str, end: str, zone: str = "UTC", schedules: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "schedules": schedules if schedules is not None else [ALICE],
        "startTime": {"dateTime": start, "timeZone": zone},
        "endTime": {"dateTime": end, "timeZone": zone},
        **extra,
    }


def test_schedule_items_and_availability_view(sim: SimClient, graph: httpx.Client) -> None:
    sim.seed(ALICE, subject="Call", start="2030-01-07T09:00:00Z", end="2030-01-07T10:00:00Z", freeBusy="Busy")
    sim.seed(ALICE, subject="Maybe", start="2030-01-07T09:30:00Z", end="2030-01-07T11:00:00Z", freeBusy="Tentative")
    sim.seed(ALICE, subject="Away", start="2030-01-07T12:00:00Z", end="2030-01-07T13:00:00Z", freeBusy="OOF")
    sim.seed(
        ALICE, subject="Home", start="2030-01-07T14:00:00Z", end="2030-01-07T15:00:00Z", freeBusy="WorkingElsewhere"
    )
    sim.seed(BOB, subject="Before", start="2030-01-07T07:00:00Z", end="2030-01-07T08:30:00Z", freeBusy="Busy")

    response = graph.post(URL, json=window("2030-01-07T08:00:00", "2030-01-07T16:00:00", schedules=[ALICE, BOB]))
    assert response.status_code == 200
    alice, bob = response.json()["value"]
    assert alice["scheduleId"] == ALICE
    # 30-minute slots from 08:00: busy 09:00-10:00 beats tentative, tentative until 11:00, OOF 12-13, elsewhere is 0.
    assert alice["availabilityView"] == "0022110033000000"
    assert [(i["status"], i["subject"], i["start"]["dateTime"]) for i in alice["scheduleItems"]] == [
        ("busy", "Call", "2030-01-07T09:00:00.0000000"),
        ("tentative", "Maybe", "2030-01-07T09:30:00.0000000"),
        ("oof", "Away", "2030-01-07T12:00:00.0000000"),
        ("workingElsewhere", "Home", "2030-01-07T14:00:00.0000000"),
    ]
    assert alice["workingHours"]["daysOfWeek"][0] == "monday"
    # An item overlapping the window is returned whole.
    [before] = bob["scheduleItems"]
    assert (before["start"]["dateTime"], bob["availabilityView"][:2]) == ("2030-01-07T07:00:00.0000000", "20")


def test_times_come_in_the_prefer_zone_and_the_window_in_its_own(sim: SimClient, graph: httpx.Client) -> None:
    sim.seed(ALICE, subject="Call", start="2030-07-01T16:00:00Z", end="2030-07-01T17:00:00Z")
    body = window(
        "2030-07-01T08:00:00", "2030-07-01T12:00:00", zone="Pacific Standard Time", availabilityViewInterval=60
    )
    plain = graph.post(URL, json=body).json()["value"][0]
    assert plain["availabilityView"] == "0200"  # 08:00 PST is 16:00 UTC: the second hour
    assert plain["scheduleItems"][0]["start"] == {"dateTime": "2030-07-01T16:00:00.0000000", "timeZone": "UTC"}
    zoned = graph.post(URL, json=body, headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'}).json()["value"][
        0
    ]
    assert zoned["scheduleItems"][0]["start"] == {
        "dateTime": "2030-07-01T09:00:00.0000000",
        "timeZone": "Pacific Standard Time",
    }


def test_a_private_item_hides_its_subject(sim: SimClient, graph: httpx.Client) -> None:
    created = graph.post(
        f"/users/{ALICE}/events",
        json={
            "subject": "Secret",
            "sensitivity": "private",
            "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
        },
    )
    assert created.status_code == 201
    [item] = graph.post(URL, json=window("2030-01-07T08:00:00", "2030-01-07T12:00:00")).json()["value"][0][
        "scheduleItems"
    ]
    assert item["isPrivate"] is True and "subject" not in item


def test_unknown_and_on_premises_addresses_get_an_error_entry_not_a_failed_call(graph: httpx.Client) -> None:
    schedules = [ALICE, "nobody@contoso.com", ON_PREMISES_MAILBOX, "anyone@fabrikam.com"]
    response = graph.post(URL, json=window("2030-01-07T08:00:00", "2030-01-07T09:00:00", schedules=schedules))
    assert response.status_code == 200
    alice, nobody, onprem, fabrikam = response.json()["value"]
    assert alice["availabilityView"] == "00" and "error" not in alice
    assert nobody == {
        "scheduleId": "nobody@contoso.com",
        "error": {
            "message": "Unable to resolve e-mail address nobody@contoso.com to an Active Directory object.",
            "responseCode": "5009",
        },
    }
    assert onprem["error"]["responseCode"] == "MailboxNotEnabledForRESTAPI"
    assert fabrikam["availabilityView"] == "00"  # every address of an accepted domain is a mailbox


def test_at_most_20_schedules_a_call(sim: SimClient, graph: httpx.Client) -> None:
    many = [f"user{n}@fabrikam.com" for n in range(21)]
    assert (
        graph.post(URL, json=window("2030-01-07T08:00:00", "2030-01-07T09:00:00", schedules=many[:20])).status_code
        == 200
    )
    refused = graph.post(URL, json=window("2030-01-07T08:00:00", "2030-01-07T09:00:00", schedules=many))
    assert error(refused) == (
        400,
        "ErrorMailboxDataArrayTooBig",
        "There are too many target users in the EmailAddress array. The allowed size = 20; the actual size = 21.",
    )
    sim.limits(graph_schedule_max=100)  # what Exchange Online was seen to accept
    assert graph.post(URL, json=window("2030-01-07T08:00:00", "2030-01-07T09:00:00", schedules=many)).status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (window("2030-01-01T00:00:00", "2030-03-05T00:00:00"), "ErrorTimeIntervalTooBig"),  # 63 days
        (window("2030-01-07T10:00:00", "2030-01-07T10:00:00"), "ErrorInvalidTimeInterval"),
        (window("2030-01-07T10:00:00", "2030-01-07T09:00:00"), "ErrorInvalidTimeInterval"),
        (
            window("2030-01-07T08:00:00", "2030-01-07T09:00:00", availabilityViewInterval=4),
            "ErrorInvalidMergedFreeBusyInterval",
        ),
        (
            window("2030-01-07T08:00:00", "2030-01-07T09:00:00", availabilityViewInterval=90),
            "ErrorInvalidMergedFreeBusyInterval",
        ),
        (window("2030-01-07T08:00:00", "2030-01-07T09:00:00", schedules=[]), "ErrorMailboxDataArrayEmpty"),
        ({"schedules": [ALICE]}, "ErrorInvalidParameter"),
        (
            window("2030-01-07T08:00:00", "2030-01-07T09:00:00", zone="Nowhere Standard Time"),
            "TimeZoneNotSupportedException",
        ),
    ],
)
def test_windows_and_intervals_graph_refuses(graph: httpx.Client, body: dict[str, Any], code: str) -> None:
    assert error(graph.post(URL, json=body))[:2] == (400, code)


def test_sixty_two_days_is_allowed_and_the_interval_may_be_a_string(graph: httpx.Client) -> None:
    # Microsoft's own example sends "availabilityViewInterval": "15" and capitalised parameter names.
    body = {
        "Schedules": [ALICE],
        "StartTime": {"dateTime": "2030-01-01T00:00:00", "timeZone": "UTC"},
        "EndTime": {"dateTime": "2030-03-04T00:01:00", "timeZone": "UTC"},
        "availabilityViewInterval": "1440",
    }
    assert error(graph.post(URL, json=body))[2].endswith("The allowed limit = 62 days; the actual limit = 63 days.")
    body["EndTime"]["dateTime"] = "2030-03-04T00:00:00"  # exactly 62 days
    response = graph.post(URL, json=body)
    assert response.status_code == 200 and len(response.json()["value"][0]["availabilityView"]) == 62


def test_twenty_mailboxes_of_ten_items_take_a_few_milliseconds(sim: SimClient, graph: httpx.Client) -> None:
    schedules = [f"user{n}@fabrikam.com" for n in range(20)]
    for email in schedules:
        for hour in range(10):
            sim.seed(
                email,
                subject=f"S{hour}",
                start=f"2030-01-07T{hour + 7:02d}:00:00Z",
                end=f"2030-01-07T{hour + 7:02d}:30:00Z",
            )
    body = window("2030-01-07T00:00:00", "2030-01-14T00:00:00", schedules=schedules, availabilityViewInterval=15)
    durations = []
    for _ in range(5):
        response = graph.post(URL, json=body)
        assert response.status_code == 200 and sum(len(v["scheduleItems"]) for v in response.json()["value"]) == 200
        durations.append(next(e for e in reversed(sim.log()) if e["operation"] == "graph.getSchedule")["durationMs"])
    # Server-side time, strict response validation included; measured ~3 ms on the project's machine.
    assert min(durations) < 25, durations

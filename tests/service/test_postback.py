"""Appointment postbacks through the whole real path: HTTP, store, Celery on Redis, exchangelib, simulator."""

from __future__ import annotations

import uuid
from typing import Any

from ews_sim.testing import SimClient
from tests.support.stack import Stack

SET = "3a5b0f6e-2c4d-4e8f-9a1b-7d6c5e4f3a2b"


def event_id() -> str:
    return f"evt-{uuid.uuid4().hex[:12]}"


def create_body(eid: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "id": eid,
        "organizerEmail": "alice@contoso.com",
        "body": "some text description",
        "subject": "some subject",
        "location": "meeting room 'Red'",
        "startTime": "2020-10-16T10:00:00Z",
        "endTime": "2020-10-20T23:00:00Z",
        "salesforceCorrelationId": "ac3b40b4-2c33-463b-8bfe-8bcf077d7539",
        "attendees": [
            {"email": "bob@contoso.com", "isRequired": "true"},
            {"email": "carol@contoso.com", "isRequired": "false"},
        ],
    }
    body.update(overrides)
    return body


def tagged(sim: SimClient, email: str, eid: str) -> list[dict[str, Any]]:
    return [i for i in sim.calendar(email) if i["extendedProperties"].get(f"{SET}:DownsyncEventId") == eid]


def test_create_writes_one_appointment_per_mailbox(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    response = service.postback("POST", create_body(eid))
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"email": "alice@contoso.com", "errorCode": "NoError"},
        {"email": "bob@contoso.com", "errorCode": "NoError"},
        {"email": "carol@contoso.com", "errorCode": "NoError"},
    ]
    assert response.headers["X-Correlation-Id"] == "ac3b40b4-2c33-463b-8bfe-8bcf077d7539"
    assert response.headers["Location"] == f"/api/salesforce/scheduler/jobs/{response.headers['X-Job-Id']}"
    for email in ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com"):
        [item] = tagged(sim, email, eid)
        assert (item["subject"], item["body"], item["location"]) == (
            "some subject",
            "some text description",
            "meeting room 'Red'",
        )
        assert (item["start"], item["end"]) == ("2020-10-16T10:00:00Z", "2020-10-20T23:00:00Z")
        assert item["attendees"] == [] and item["isMeeting"] is False and item["freeBusy"] == "Busy"


SEED_CREATE = {
    "id": "abcde-fghij-klmno-pqrst-uvwxyzfb3f11e",
    "organizerEmail": "test@domain.com",
    "body": "some text description",
    "subject": "some subject",
    "location": "meeting room 'Red'",
    "startTime": "2020-10-16T10:00:00Z",
    "endTime": "2020-10-20T23:00:00Z",
    "salesforceCorrelationId": "ac3b40b4-2c33-463b-8bfe-8bcf077d7539",
    "attendees": [
        {"email": "attendee1@domain.com", "isRequired": "true"},
        {"email": "attendee2@domain.com", "isRequired": "false"},
    ],
}


def test_the_seed_samples_give_the_documented_answers(service: Stack, sim: SimClient) -> None:
    # As in the seed's sample answers: attendee1 is no mailbox of the organisation.
    sim.add_mailboxes("test@domain.com", "attendee2@domain.com", "organizer@domain.com", "test1@domain.com")
    eid = f"{SEED_CREATE['id']}-{uuid.uuid4().hex[:6]}"
    created = service.postback("POST", {**SEED_CREATE, "id": eid})
    assert created.status_code == 200
    assert created.json() == [
        {"email": "test@domain.com", "errorCode": "NoError"},
        {"email": "attendee1@domain.com", "errorCode": "ErrorMailRecipientNotFound"},
        {"email": "attendee2@domain.com", "errorCode": "NoError"},
    ]
    assert len(tagged(sim, "test@domain.com", eid)) == len(tagged(sim, "attendee2@domain.com", eid)) == 1

    state = {k: v for k, v in SEED_CREATE.items() if k not in ("id", "salesforceCorrelationId")}
    updated = service.postback(
        "PUT",
        {
            "original": {**state, "id": eid},
            "new": state,
            "salesforceCorrelationId": "ac3b40b4-2c33-463b-8bfe-8bcf077d7539",
        },
    )
    assert updated.status_code == 200
    assert updated.json() == [
        {"email": "test@domain.com", "errorCode": "NoError"},
        {"email": "attendee1@domain.com", "errorCode": "ErrorMailRecipientNotFound"},
        {"email": "attendee2@domain.com", "errorCode": "NoError"},
    ]
    assert len(tagged(sim, "test@domain.com", eid)) == 1

    deleted = service.postback(
        "DELETE",
        {"id": eid, "organizerEmail": "test@domain.com", "attendees": ["attendee2@domain.com", "test2@domain.com"]},
    )
    assert deleted.status_code == 200
    assert deleted.json() == [
        {"email": "test@domain.com", "errorCode": "NoError"},
        {"email": "attendee2@domain.com", "errorCode": "NoError"},
        {"email": "test2@domain.com", "errorCode": "ErrorMailRecipientNotFound"},
    ]
    assert tagged(sim, "test@domain.com", eid) == tagged(sim, "attendee2@domain.com", eid) == []


def test_update_moves_adds_removes_and_changes_organizer(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    original = create_body(eid)
    assert service.postback("POST", original).status_code == 200
    new = {
        "organizerEmail": "dave@contoso.com",
        "subject": "moved",
        "body": "new text",
        "location": None,
        "startTime": "2020-10-17T08:30:00+02:00",
        "endTime": "2020-10-17T09:30:00+02:00",
        "attendees": [
            {"email": "Bob@Contoso.com", "isRequired": True},
            {"email": "x1@fabrikam.com", "isRequired": False},
        ],
    }
    response = service.postback("PUT", {"original": original, "new": new})
    assert response.status_code == 200, response.text
    assert response.json() == [
        {"email": "dave@contoso.com", "errorCode": "NoError"},
        {"email": "Bob@Contoso.com", "errorCode": "NoError"},
        {"email": "x1@fabrikam.com", "errorCode": "NoError"},
        {"email": "alice@contoso.com", "errorCode": "NoError"},
        {"email": "carol@contoso.com", "errorCode": "NoError"},
    ]
    for email in ("dave@contoso.com", "bob@contoso.com", "x1@fabrikam.com"):
        [item] = tagged(sim, email, eid)
        assert (item["subject"], item["body"], item["location"]) == ("moved", "new text", None)
        assert (item["start"], item["end"]) == ("2020-10-17T06:30:00Z", "2020-10-17T07:30:00Z")
    assert tagged(sim, "alice@contoso.com", eid) == tagged(sim, "carol@contoso.com", eid) == []


def test_one_unknown_attendee_fails_alone(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    body = create_body(
        eid,
        attendees=[
            {"email": "bob@contoso.com", "isRequired": "true"},
            {"email": "ghost@contoso.com", "isRequired": "true"},
            {"email": "carol@contoso.com", "isRequired": "false"},
        ],
    )
    response = service.postback("POST", body)
    assert [r["errorCode"] for r in response.json()] == ["NoError", "NoError", "ErrorMailRecipientNotFound", "NoError"]
    job = service.job(response.headers["X-Job-Id"])
    assert job["state"] == "partial"
    ghost = next(r for r in job["results"] if r["email"] == "ghost@contoso.com")
    assert ghost["attempts"] == 1  # permanent: recorded at once, not retried
    assert len(tagged(sim, "carol@contoso.com", eid)) == 1


def test_the_same_postback_twice_changes_nothing(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    body = create_body(eid)
    assert service.postback("POST", body).status_code == 200
    writes_before = [e for e in sim.log() if e["operation"] in service.dialect.writes]
    second = service.postback("POST", body)
    assert second.status_code == 200 and {r["errorCode"] for r in second.json()} == {"NoError"}
    writes_after = [e for e in sim.log() if e["operation"] in service.dialect.writes]
    assert writes_after == writes_before
    for email in ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com"):
        assert len(tagged(sim, email, eid)) == 1


def test_back_to_back_postbacks_with_two_workers_end_as_the_last_says(service: Stack, sim: SimClient) -> None:
    service.start_worker(concurrency=4)
    deleted, kept = event_id(), event_id()
    steps = []
    for eid in (deleted, kept):
        first = create_body(eid)
        second = {**first, "subject": "second", "attendees": [{"email": "dave@contoso.com", "isRequired": "true"}]}
        third = {**first, "subject": "third", "startTime": "2020-10-18T10:00:00Z", "endTime": "2020-10-18T11:00:00Z"}
        steps.append(("POST", first, eid))
        steps.append(("PUT", {"original": first, "new": {k: v for k, v in second.items() if k != "id"}}, eid))
        steps.append(("PUT", {"original": second, "new": {k: v for k, v in third.items() if k != "id"}}, eid))
    steps.append(
        (
            "DELETE",
            {
                "id": deleted,
                "organizerEmail": "alice@contoso.com",
                "attendees": ["bob@contoso.com", "carol@contoso.com"],
            },
            deleted,
        )
    )
    jobs = []
    for method, body, _ in steps:
        response = service.postback(method, body, wait=0)
        assert response.status_code in (200, 202), response.text
        jobs.append(response.headers["X-Job-Id"])
    for job_id in jobs:
        job = service.wait_job(job_id)
        assert job["state"] == "succeeded", job
    everyone = ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com", "dave@contoso.com")
    assert all(tagged(sim, email, deleted) == [] for email in everyone)
    for email in ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com"):
        [item] = tagged(sim, email, kept)
        assert (item["subject"], item["start"]) == ("third", "2020-10-18T10:00:00Z")
    assert tagged(sim, "dave@contoso.com", kept) == []


def test_a_sandbox_tenant_with_the_same_event_ids_keeps_its_own_appointments(service: Stack, sim: SimClient) -> None:
    eid = event_id()
    assert service.postback("POST", create_body(eid, subject="production")).status_code == 200
    assert service.postback("POST", create_body(eid, subject="sandbox"), token="sandbox").status_code == 200
    for email in ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com"):
        assert sorted(i["subject"] for i in tagged(sim, email, eid)) == ["production", "sandbox"]
    delete = {"id": eid, "organizerEmail": "alice@contoso.com", "attendees": ["bob@contoso.com", "carol@contoso.com"]}
    assert service.postback("DELETE", delete, token="sandbox").status_code == 200
    for email in ("alice@contoso.com", "bob@contoso.com", "carol@contoso.com"):
        assert [i["subject"] for i in tagged(sim, email, eid)] == ["production"]

"""Meetings through the real path: invitations, copies in attendees' calendars, answers read live."""

from __future__ import annotations

import time
import uuid
from typing import Any

from ews_sim.testing import SimClient
from tests.support.stack import Stack

PATH = "/api/salesforce/scheduler/meeting"
SET = "3a5b0f6e-2c4d-4e8f-9a1b-7d6c5e4f3a2b"


def meeting_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "id": f"mtg-{uuid.uuid4().hex[:10]}",
        "organizerEmail": "alice@contoso.com",
        "body": "meeting description",
        "subject": "meeting subject",
        "location": "meeting room 1",
        "startTime": "2026-06-16T10:00:00Z",
        "endTime": "2026-06-16T11:00:00Z",
        "salesforceCorrelationId": "ac7b40b4-2c33-723b-8aaie-8bpf077z7539",
        "attendees": [
            {"email": "bob@contoso.com", "isRequired": "true"},
            {"email": "carol@contoso.com", "isRequired": "false"},
            {"email": "guest@example.org", "isRequired": "true"},
        ],
    }
    body.update(overrides)
    return body


def organizer_items(sim: SimClient, mid: str, email: str = "alice@contoso.com") -> list[dict[str, Any]]:
    return [i for i in sim.calendar(email) if i["extendedProperties"].get(f"{SET}:DownsyncEventId") == mid]


def copies(sim: SimClient, email: str, uid: str) -> list[dict[str, Any]]:
    return [i for i in sim.calendar(email) if i["uid"] == uid]


def read(service: Stack, mid: str, organizer: str = "alice@contoso.com", **kw: Any) -> Any:
    return service.call("GET", PATH, params={"id": mid, "organizerEmail": organizer}, **kw)


def test_create_invites_answers_show_and_read_back(service: Stack, sim: SimClient) -> None:
    body = meeting_body()
    created = service.call("POST", PATH, json=body)
    assert created.status_code == 200, created.text
    assert created.json() == {"email": "alice@contoso.com", "errorCode": "NoError"}
    assert created.headers["Location"].endswith(created.headers["X-Job-Id"])
    [item] = organizer_items(sim, body["id"])
    assert item["isMeeting"] and (item["subject"], item["location"]) == ("meeting subject", "meeting room 1")
    for email in ("bob@contoso.com", "carol@contoso.com"):
        [copy] = copies(sim, email, item["uid"])
        assert copy["myResponse"] == "NoResponseReceived" and copy["start"] == "2026-06-16T10:00:00Z"

    sim.respond("bob@contoso.com", "Accept", organizerItemId=item["itemId"])
    sim.respond("carol@contoso.com", "Decline", organizerItemId=item["itemId"])
    got = read(service, body["id"])
    assert got.status_code == 200, got.text
    assert got.json() == {
        "id": body["id"],
        "organizerEmail": "alice@contoso.com",
        "body": "meeting description",
        "subject": "meeting subject",
        "location": "meeting room 1",
        "startTime": "2026-06-16T10:00:00Z",
        "endTime": "2026-06-16T11:00:00Z",
        "attendees": [
            {"email": "bob@contoso.com", "isRequired": "true", "response": "Accepted"},
            {"email": "guest@example.org", "isRequired": "true", "response": "NoResponseReceived"},
            {"email": "carol@contoso.com", "isRequired": "false", "response": "Declined"},
        ],
    }
    dave_body = meeting_body(attendees=[{"email": "dave@contoso.com", "isRequired": "true"}])
    service.call("POST", PATH, json=dave_body)
    [dave_item] = organizer_items(sim, dave_body["id"])
    sim.respond("dave@contoso.com", "Tentative", organizerItemId=dave_item["itemId"])
    [dave] = read(service, dave_body["id"]).json()["attendees"]
    assert dave["response"] == "Tentative"


def test_repeating_a_create(service: Stack, sim: SimClient) -> None:
    body = meeting_body()
    first = service.call("POST", PATH, json=body)
    again = service.call("POST", PATH, json={**body, "salesforceCorrelationId": "another"})
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["X-Job-Id"] == first.headers["X-Job-Id"]
    [item] = organizer_items(sim, body["id"])
    assert len(copies(sim, "bob@contoso.com", item["uid"])) == 1
    assert [e["operation"] for e in sim.log()].count(service.dialect.create) == 1  # no second invitation
    different = service.call("POST", PATH, json={**body, "subject": "another meeting"})
    assert different.status_code == 409
    assert different.json()["errorCode"] == "MeetingAlreadyExists" and different.json()["email"] == "alice@contoso.com"


def test_patch_changes_only_what_is_present(service: Stack, sim: SimClient) -> None:
    body = meeting_body()
    service.call("POST", PATH, json=body)
    [before] = organizer_items(sim, body["id"])
    patched = service.call(
        "PATCH", PATH, json={"id": body["id"], "organizerEmail": "ALICE@contoso.com", "subject": "New subject"}
    )
    assert patched.status_code == 200 and patched.json() == {"email": "ALICE@contoso.com", "errorCode": "NoError"}
    [after] = organizer_items(sim, body["id"])
    assert after["subject"] == "New subject"
    for key in ("body", "location", "start", "end", "attendees"):
        assert after[key] == before[key], key
    assert copies(sim, "bob@contoso.com", after["uid"])[0]["subject"] == "New subject"  # attendees notified


def test_patch_attendees_adds_and_removes_copies(service: Stack, sim: SimClient) -> None:
    body = meeting_body()
    service.call("POST", PATH, json=body)
    new_list = [{"email": "bob@contoso.com", "isRequired": "true"}, {"email": "dave@contoso.com", "isRequired": "true"}]
    patched = service.call(
        "PATCH",
        PATH,
        json={
            "id": body["id"],
            "organizerEmail": "alice@contoso.com",
            "attendees": new_list,
            "startTime": "2026-06-16T12:00:00Z",
            "endTime": "2026-06-16T13:00:00Z",
        },
    )
    assert patched.status_code == 200, patched.text
    [item] = organizer_items(sim, body["id"])
    assert [a["email"] for a in item["attendees"]] == ["bob@contoso.com", "dave@contoso.com"]
    [dave] = copies(sim, "dave@contoso.com", item["uid"])
    assert dave["start"] == "2026-06-16T12:00:00Z" and not dave["isCancelled"]
    [carol] = copies(sim, "carol@contoso.com", item["uid"])
    assert carol["isCancelled"]
    assert copies(sim, "bob@contoso.com", item["uid"])[0]["start"] == "2026-06-16T12:00:00Z"


def test_another_organizer_or_an_unknown_meeting_is_not_found(service: Stack, sim: SimClient) -> None:
    body = meeting_body()
    service.call("POST", PATH, json=body)
    writes = len([e for e in sim.log() if e["operation"] in service.dialect.writes])
    for method, payload in (
        ("PATCH", {"id": body["id"], "organizerEmail": "bob@contoso.com", "subject": "hijack"}),
        ("DELETE", {"id": body["id"], "organizerEmail": "bob@contoso.com"}),
        ("PATCH", {"id": "no-such-meeting", "organizerEmail": "alice@contoso.com", "subject": "x"}),
    ):
        response = service.call(method, PATH, json=payload)
        assert response.status_code == 404, response.text
        error = response.json()
        assert error["errorCode"] == "MeetingNotFound" and error["email"] == payload["organizerEmail"]
    missing = read(service, "no-such-meeting")
    assert missing.status_code == 404 and missing.json()["errorCode"] == "MeetingNotFound"
    assert missing.json()["email"] == "alice@contoso.com"
    assert len([e for e in sim.log() if e["operation"] in service.dialect.writes]) == writes
    assert organizer_items(sim, body["id"])[0]["subject"] == "meeting subject"


def test_delete_cancels_every_copy(service: Stack, sim: SimClient) -> None:
    body = meeting_body()
    service.call("POST", PATH, json=body)
    [item] = organizer_items(sim, body["id"])
    deleted = service.call("DELETE", PATH, json={"id": body["id"], "organizerEmail": "alice@contoso.com"})
    assert deleted.status_code == 200 and deleted.json() == {"email": "alice@contoso.com", "errorCode": "NoError"}
    assert organizer_items(sim, body["id"]) == []
    for email in ("bob@contoso.com", "carol@contoso.com"):
        [copy] = copies(sim, email, item["uid"])
        assert copy["isCancelled"] and copy["freeBusy"] == "Free"
    gone = read(service, body["id"])
    assert gone.status_code == 404 and gone.json()["errorCode"] == "MeetingNotFound"
    again = service.call("DELETE", PATH, json={"id": body["id"], "organizerEmail": "alice@contoso.com"})
    assert again.status_code == 404 and again.json()["errorCode"] == "MeetingNotFound"


def test_ms_teams_is_an_online_meeting_on_graph_and_text_on_ews(service: Stack, sim: SimClient) -> None:
    body = meeting_body(location="MS Teams")
    assert service.call("POST", PATH, json=body).json()["errorCode"] == "NoError"
    [item] = organizer_items(sim, body["id"])
    assert item["location"] == "MS Teams"
    got = read(service, body["id"]).json()
    if service.dialect.name == "ews":
        assert item["body"] == "meeting description" and got["body"] == "meeting description"
    else:
        # The join link is appended to the body the invitations carry, and GET returns it.
        assert (
            item["body"].startswith("meeting description\n\n") and "teams.microsoft.com/l/meetup-join/" in item["body"]
        )
        assert got["body"] == item["body"]
    assert [m["kind"] for m in sim.messages(to="bob@contoso.com")] == ["request"]


def test_throttling_and_a_killed_worker_leave_one_meeting(service: Stack, sim: SimClient) -> None:
    sim.fault(operation=service.dialect.create, count=2, **service.dialect.throttle(200))
    sim.fault(operation=service.dialect.create, latencyMs=1500)
    body = meeting_body()
    response = service.call("POST", PATH, json=body, params={"wait": 0})
    deadline = time.monotonic() + 30
    creates = [e["responseCode"] for e in sim.log() if e["operation"] == service.dialect.create]
    while creates.count(service.dialect.throttled_code) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
        creates = [e["responseCode"] for e in sim.log() if e["operation"] == service.dialect.create]
    time.sleep(0.6)  # the third CreateItem is in flight, held by the simulator
    for worker in service.workers:
        worker.kill()
    service.workers.clear()
    time.sleep(1.5)
    sim.clear_faults()
    service.start_worker()
    job = service.wait_job(response.headers["X-Job-Id"])
    assert job["state"] == "succeeded", job
    [item] = organizer_items(sim, body["id"])
    for email in ("bob@contoso.com", "carol@contoso.com"):
        assert len(copies(sim, email, item["uid"])) == 1  # one invitation each
    successful = [e for e in sim.log() if e["operation"] == service.dialect.create and e["responseCode"] == "NoError"]
    assert len(successful) == 1


def test_meeting_bodies_are_checked(service: Stack, sim: SimClient) -> None:
    for payload, field in (
        ({k: v for k, v in meeting_body().items() if k != "subject"}, "subject"),
        ({k: v for k, v in meeting_body().items() if k != "attendees"}, "attendees"),
        (meeting_body(endTime="2026-06-16T09:00:00Z"), "endTime"),
        (meeting_body(attendees=[{"email": "x", "isRequired": "true"}]), "attendees[0].email"),
    ):
        response = service.call("POST", PATH, json=payload)
        assert response.status_code == 422, response.text
        assert any(d["field"] == field for d in response.json()["details"]), response.json()
    late = service.call("PATCH", PATH, json={"id": "x", "organizerEmail": "alice@contoso.com", "endTime": "nope"})
    assert late.status_code == 422
    assert sim.log() == []


def test_concurrent_patches_both_apply_in_turn(service: Stack, sim: SimClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = meeting_body()
    service.call("POST", PATH, json=body)
    patches = [
        {"id": body["id"], "organizerEmail": "alice@contoso.com", "subject": "both changed"},
        {"id": body["id"], "organizerEmail": "alice@contoso.com", "location": "room 9"},
    ]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda p: service.call("PATCH", PATH, json=p, params={"wait": 0}), patches))
    jobs = [service.wait_job(a.headers["X-Job-Id"]) for a in answers]
    assert [j["state"] for j in jobs] == ["succeeded", "succeeded"]
    [item] = organizer_items(sim, body["id"])
    assert (item["subject"], item["location"]) == ("both changed", "room 9")  # neither overwrote the other


def test_concurrent_identical_creates_make_one_meeting(service: Stack, sim: SimClient) -> None:
    from concurrent.futures import ThreadPoolExecutor

    body = meeting_body()
    with ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: service.call("POST", PATH, json=body), range(3)))
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert len({a.headers["X-Job-Id"] for a in answers}) == 1
    [item] = organizer_items(sim, body["id"])
    assert len(copies(sim, "bob@contoso.com", item["uid"])) == 1


def test_two_tenants_in_one_organisation_with_one_meeting_id_never_touch_each_other(
    service: Stack, sim: SimClient
) -> None:
    body = meeting_body()
    assert service.call("POST", PATH, json=body).status_code == 200
    theirs = meeting_body(
        id=body["id"], subject="sandbox copy", attendees=[{"email": "dave@contoso.com", "isRequired": "true"}]
    )
    created = service.call("POST", PATH, json=theirs, token="sandbox")
    assert created.status_code == 200, created.text  # not MeetingAlreadyExists: that id is another tenant's
    assert sorted(i["subject"] for i in organizer_items(sim, body["id"])) == ["meeting subject", "sandbox copy"]
    assert read(service, body["id"], token="sandbox").json()["subject"] == "sandbox copy"
    before = len(sim.messages())
    deleted = service.call(
        "DELETE", PATH, json={"id": body["id"], "organizerEmail": "alice@contoso.com"}, token="sandbox"
    )
    assert deleted.status_code == 200, deleted.text
    assert [(m["to"], m["kind"]) for m in sim.messages()[before:]] == [("dave@contoso.com", "cancel")]
    [kept] = organizer_items(sim, body["id"])
    assert kept["subject"] == "meeting subject" and read(service, body["id"]).status_code == 200
    assert read(service, body["id"], token="sandbox").status_code == 404


def test_a_create_that_failed_for_good_frees_its_id(service: Stack, sim: SimClient) -> None:
    body = meeting_body(organizerEmail="ghost@contoso.com")
    failed = service.call("POST", PATH, json=body)
    assert failed.status_code == 200 and failed.json()["errorCode"] == "ErrorMailRecipientNotFound", failed.text
    corrected = service.call("POST", PATH, json={**body, "organizerEmail": "alice@contoso.com"})
    assert corrected.status_code == 200, corrected.text
    assert corrected.json() == {"email": "alice@contoso.com", "errorCode": "NoError"}
    assert len(organizer_items(sim, body["id"])) == 1


def test_attendee_order_is_not_identity_and_changes_nothing(service: Stack, sim: SimClient) -> None:
    body = meeting_body()
    first = service.call("POST", PATH, json=body)
    sent = len(sim.messages())
    assert sent == 3  # one request per attendee
    reordered = {**body, "attendees": body["attendees"][::-1]}
    again = service.call("POST", PATH, json=reordered)
    assert again.status_code == 200 and again.headers["X-Job-Id"] == first.headers["X-Job-Id"]
    patched = service.call(
        "PATCH",
        PATH,
        json={"id": body["id"], "organizerEmail": "alice@contoso.com", "attendees": reordered["attendees"]},
    )
    assert patched.status_code == 200 and patched.json()["errorCode"] == "NoError"
    assert len(sim.messages()) == sent  # nobody was notified of a change that is none

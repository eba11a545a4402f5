"""The Graph gateway through the real msal and httpx against the simulator's Graph front door."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from downsync.backends.graph.gateway import TEAMS_REFUSED, GraphGateway
from downsync.core.errors import Conflict, PermanentError, TransientError
from downsync.core.model import Appointment, Invitee, Meeting, Tag
from ews_sim.testing import (
    CERT_APP_CERTIFICATE,
    CERT_APP_ID,
    CERT_APP_KEY,
    LIMITED_APP_ID,
    LIMITED_APP_SECRET,
    NO_CONSENT_APP_ID,
    NO_CONSENT_APP_SECRET,
    ON_PREMISES_MAILBOX,
    TEAMS_DISABLED_MAILBOX,
    SimClient,
    ews_account,
)
from tests.downsync.backends.graph.conftest import GatewayFactory

SET = "3a5b0f6e-2c4d-4e8f-9a1b-7d6c5e4f3a2b"
START = datetime(2030, 3, 4, 9, tzinfo=UTC)
TAG = Tag("tenant-a", "postback", "Evt-1")
ALICE, BOB, CAROL = "alice@contoso.com", "bob@contoso.com", "carol@contoso.com"


def appointment(subject: str = "Checkup") -> Appointment:
    return Appointment(subject, "notes", "Room 1", START, START + timedelta(hours=1))


def meeting(*people: str, online: bool = False, location: str = "Room 2") -> Meeting:
    invitees = tuple(Invitee(p, i == 0) for i, p in enumerate(people))
    return Meeting("Review", "agenda", location, START, START + timedelta(hours=1), invitees, online)


def test_appointments_are_created_found_by_tag_updated_with_the_etag_and_removed(
    gateway: GraphGateway, sim: SimClient
) -> None:
    ref = gateway.create_appointment(BOB, TAG, appointment(), key="k1")
    [found] = gateway.find(BOB, TAG)
    assert found.ref == ref and found.tenant == "tenant-a" and found.fingerprint == appointment().fingerprint
    # The same item through EWS: one organisation, two front doors.
    [item] = sim.calendar(BOB)
    assert item["subject"] == "Checkup" and item["extendedProperties"][f"{SET}:DownsyncEventId"] == "Evt-1"
    assert item["freeBusy"] == "Busy" and item["attendees"] == []
    updated = gateway.update_appointment(BOB, ref, TAG, appointment("Moved"))
    assert updated.change_key != ref.change_key and sim.calendar(BOB)[0]["subject"] == "Moved"
    with pytest.raises(Conflict):
        gateway.update_appointment(BOB, ref, TAG, appointment("Stale"))  # the old etag no longer holds
    gateway.remove(BOB, [updated])
    gateway.remove(BOB, [updated])  # already gone is fine
    assert sim.calendar(BOB) == [] and gateway.find(BOB, TAG) == []


def test_find_is_exact_and_never_returns_another_tenants_items(gateway: GraphGateway) -> None:
    gateway.create_appointment(BOB, TAG, appointment(), key="k1")
    gateway.create_appointment(BOB, Tag("tenant-b", "postback", "Evt-1"), appointment(), key="k2")
    gateway.create_appointment(BOB, Tag("tenant-a", "postback", "evt-1"), appointment(), key="k3")  # other case
    gateway.create_appointment(BOB, Tag("tenant-a", "meeting", "Evt-1"), appointment(), key="k4")
    assert len(gateway.find(BOB, TAG)) == 1


def test_an_item_written_through_ews_is_found_through_graph(gateway: GraphGateway, ews_simulator: object) -> None:
    from exchangelib import CalendarItem

    from downsync.backends.ews.items import tag_fields, written_fields

    acct = ews_account(ews_simulator.ews_url, BOB)  # type: ignore[attr-defined]
    item = CalendarItem(account=acct, folder=acct.calendar, **written_fields(appointment(), "fp"), **tag_fields(TAG))
    item.save(send_meeting_invitations="SendToNone")
    [found] = gateway.find(BOB, TAG)
    assert found.fingerprint == "fp" and found.tenant == "tenant-a"


def test_a_retried_create_with_the_same_key_makes_no_second_event(gateway: GraphGateway, sim: SimClient) -> None:
    first = gateway.create_appointment(BOB, TAG, appointment(), key="same")
    again = gateway.create_appointment(BOB, TAG, appointment(), key="same")
    assert again.id == first.id and len(sim.calendar(BOB)) == 1


def test_a_meeting_draft_invites_nobody_and_the_fenced_send_invites_once(gateway: GraphGateway, sim: SimClient) -> None:
    tag = Tag("tenant-a", "meeting", "M-1")
    state = meeting(BOB, "guest@example.org")
    draft = gateway.create_meeting_draft(ALICE, tag, state, key="m")
    assert sim.messages() == [] and [f.fingerprint for f in gateway.find(ALICE, tag)] == [None]
    sent, note = gateway.send_meeting(ALICE, draft, tag, state)
    assert note is None
    assert sorted((m["to"], m["kind"]) for m in sim.messages()) == [(BOB, "request"), ("guest@example.org", "request")]
    with pytest.raises(Conflict):
        gateway.send_meeting(ALICE, draft, tag, state)  # a second send on the draft's etag is refused
    assert len(sim.messages()) == 2
    moved = meeting(BOB, CAROL)
    gateway.send_meeting(ALICE, sent, tag, moved)
    kinds = sorted((m["to"], m["kind"]) for m in sim.messages()[2:])
    assert kinds == [(BOB, "update"), (CAROL, "request"), ("guest@example.org", "cancel")]
    view = gateway.read_meeting(ALICE, tag)
    assert view is not None and [(a.email, a.required, a.response) for a in view.attendees] == [
        (BOB, True, "NoResponseReceived"),
        (CAROL, False, "NoResponseReceived"),
    ]
    [found] = gateway.find(ALICE, tag)
    gateway.cancel_meeting(ALICE, [found.ref])
    assert sorted((m["to"], m["kind"]) for m in sim.messages()[5:]) == [(BOB, "cancel"), (CAROL, "cancel")]
    assert gateway.read_meeting(ALICE, tag) is None


def test_answers_read_back_in_the_contracts_words(gateway: GraphGateway, sim: SimClient) -> None:
    tag = Tag("tenant-a", "meeting", "M-2")
    draft = gateway.create_meeting_draft(ALICE, tag, meeting(BOB, CAROL), key="m2")
    _sent, _ = gateway.send_meeting(ALICE, draft, tag, meeting(BOB, CAROL))
    sim.respond(BOB, "Accept", organizerItemId=sim.calendar(ALICE)[0]["itemId"])
    sim.respond(CAROL, "Tentative", organizerItemId=sim.calendar(ALICE)[0]["itemId"])
    view = gateway.read_meeting(ALICE, tag)
    assert view is not None and {a.email: a.response for a in view.attendees} == {BOB: "Accepted", CAROL: "Tentative"}
    assert (view.subject, view.location, view.start, view.body) == ("Review", "Room 2", START, "agenda")


def test_ms_teams_meetings_get_a_join_link_in_the_body(gateway: GraphGateway, sim: SimClient) -> None:
    tag = Tag("tenant-a", "meeting", "T-1")
    state = meeting(BOB, online=True, location="MS Teams")
    draft = gateway.create_meeting_draft(ALICE, tag, state, key="t")
    _, note = gateway.send_meeting(ALICE, draft, tag, state)
    view = gateway.read_meeting(ALICE, tag)
    assert note is None and view is not None and view.location == "MS Teams"
    assert view.body.startswith("agenda\n\n") and "https://teams.microsoft.com/l/meetup-join/" in view.body
    assert [m["kind"] for m in sim.messages()] == ["request"]


def test_ms_teams_refused_by_the_calendar_still_makes_the_meeting_and_says_so(gateway: GraphGateway) -> None:
    tag = Tag("tenant-a", "meeting", "T-2")
    state = meeting(BOB, online=True, location="MS Teams")
    draft = gateway.create_meeting_draft(TEAMS_DISABLED_MAILBOX, tag, state, key="t2")
    _, note = gateway.send_meeting(TEAMS_DISABLED_MAILBOX, draft, tag, state)
    assert note == TEAMS_REFUSED
    view = gateway.read_meeting(TEAMS_DISABLED_MAILBOX, tag)
    assert view is not None and view.location == "MS Teams" and "teams.microsoft.com" not in view.body


def test_failures_say_what_to_fix(make_gateway: GatewayFactory, sim: SimClient) -> None:
    with pytest.raises(PermanentError) as bad_secret:
        make_gateway(client_secret="wrong").find(BOB, TAG)
    assert bad_secret.value.code == "ErrorAccessDenied" and "client secret or certificate" in bad_secret.value.message
    with pytest.raises(PermanentError) as no_consent:
        make_gateway(client_id=NO_CONSENT_APP_ID, client_secret=NO_CONSENT_APP_SECRET).find(BOB, TAG)
    assert "Calendars.ReadWrite" in no_consent.value.message
    limited = make_gateway(client_id=LIMITED_APP_ID, client_secret=LIMITED_APP_SECRET)
    assert limited.find(BOB, TAG) == []
    with pytest.raises(PermanentError) as policy:
        limited.find(CAROL, TAG)
    assert "application access policy" in policy.value.message
    gateway = make_gateway()
    with pytest.raises(PermanentError) as unknown:
        gateway.find("nobody@nowhere.test", TAG)
    assert unknown.value.code == "ErrorMailRecipientNotFound"
    with pytest.raises(PermanentError) as onprem:
        gateway.find(ON_PREMISES_MAILBOX, TAG)
    assert onprem.value.code == "MailboxNotEnabledForRESTAPI" and "EWS tenant" in onprem.value.message


def test_a_certificate_credential_works(make_gateway: GatewayFactory, sim: SimClient) -> None:
    gateway = make_gateway(client_id=CERT_APP_ID, client_secret=None, certificate=CERT_APP_KEY + CERT_APP_CERTIFICATE)
    assert gateway.find(BOB, TAG) == []


def test_throttling_carries_retry_after(gateway: GraphGateway, sim: SimClient) -> None:
    sim.fault(operation="graph.listEvents", httpStatus=429, retryAfterSeconds=2, count=1)
    with pytest.raises(TransientError) as throttled:
        gateway.find(BOB, TAG)
    assert throttled.value.throttled and throttled.value.back_off == 2
    assert gateway.find(BOB, TAG) == []


def test_a_refused_token_is_replaced_once(gateway: GraphGateway, sim: SimClient) -> None:
    assert gateway.find(BOB, TAG) == []  # a token is cached now
    sim.fault(operation="graph.listEvents", httpStatus=401, count=1)
    assert gateway.find(BOB, TAG) == []
    assert [e["operation"] for e in sim.log()].count("graph.token") == 2
    sim.fault(operation="graph.listEvents", httpStatus=401, count=2)
    with pytest.raises(PermanentError) as refused:
        gateway.find(BOB, TAG)
    assert refused.value.code == "ErrorAccessDenied"


def test_free_busy_in_pieces_of_twenty_with_per_mailbox_errors(gateway: GraphGateway, sim: SimClient) -> None:
    people = [f"user{n}@fabrikam.com" for n in range(45)]
    sim.seed(people[0], subject="busy", start="2030-03-04T10:00:00Z", end="2030-03-04T11:00:00Z", freeBusy="OOF")
    sim.seed(
        people[44], subject="maybe", start="2030-03-04T12:00:00Z", end="2030-03-04T13:00:00Z", freeBusy="Tentative"
    )
    answers = gateway.free_busy(
        [*people, "nobody@nowhere.test"], START, START + timedelta(days=1), time.monotonic() + 5
    )
    assert [(s.busy_type, s.start.hour) for s in answers[people[0]].spans] == [("OOF", 10)]
    assert [(s.busy_type, s.start.hour) for s in answers[people[44]].spans] == [("Tentative", 12)]
    assert answers["nobody@nowhere.test"].code == "ErrorMailRecipientNotFound"
    assert all(answers[p].code == "NoError" for p in people)
    assert len([e for e in sim.log() if e["operation"] == "graph.getSchedule"]) == 3

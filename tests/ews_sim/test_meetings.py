"""Meetings through the real exchangelib: invitations, attendees' copies, answers, updates, cancellations."""

from __future__ import annotations

import datetime as dt

import pytest
from exchangelib import Attendee, CalendarItem, EWSDateTime, EWSTimeZone, Mailbox

from ews_sim.testing import SimClient, ews_account

UTC = EWSTimeZone("UTC")
START = EWSDateTime(2026, 4, 14, 9, 0, tzinfo=UTC)


def meeting(account: object, required: list[str], optional: list[str] = ()) -> CalendarItem:  # type: ignore[assignment]
    return CalendarItem(
        account=account,
        folder=account.calendar,  # type: ignore[attr-defined]
        subject="Quarterly review",
        body="Agenda attached",
        location="Room 4",
        start=START,
        end=START + dt.timedelta(hours=1),
        required_attendees=[Attendee(mailbox=Mailbox(email_address=e)) for e in required],
        optional_attendees=[Attendee(mailbox=Mailbox(email_address=e)) for e in optional],
    )


def responses_by_email(item: CalendarItem) -> dict[str, str]:
    people = (item.required_attendees or []) + (item.optional_attendees or [])
    return {a.mailbox.email_address: a.response_type for a in people}


def test_meeting_puts_a_copy_in_every_in_org_attendee_calendar(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = meeting(alice, ["bob@contoso.com", "guest@example.org"], ["carol@contoso.com"])
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")

    [organizer] = sim.calendar("alice@contoso.com")
    assert organizer["isMeeting"] is True and organizer["myResponse"] == "Organizer"
    assert {a["email"]: (a["isRequired"], a["response"]) for a in organizer["attendees"]} == {
        "bob@contoso.com": (True, "NoResponseReceived"),
        "guest@example.org": (True, "NoResponseReceived"),
        "carol@contoso.com": (False, "NoResponseReceived"),
    }
    for email in ("bob@contoso.com", "carol@contoso.com"):
        [copy] = sim.calendar(email)
        assert copy["uid"] == organizer["uid"] and copy["itemId"] != organizer["itemId"]
        assert (copy["subject"], copy["start"], copy["end"]) == (
            "Quarterly review",
            "2026-04-14T09:00:00Z",
            "2026-04-14T10:00:00Z",
        )
        assert copy["organizer"] == "alice@contoso.com" and copy["myResponse"] == "NoResponseReceived"
        assert copy["freeBusy"] == "Tentative"  # as Exchange places a request until it is answered
    assert sim.calendar("dave@contoso.com") == []

    bob = ews_account(sim.ews_url, "bob@contoso.com")
    [bobs] = list(bob.calendar.all())
    assert bobs.is_meeting and bobs.my_response_type == "NoResponseReceived"
    assert bobs.organizer.email_address == "alice@contoso.com"


def test_send_to_none_records_attendees_without_inviting(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    meeting(alice, ["bob@contoso.com"]).save(send_meeting_invitations="SendToNone")
    [organizer] = sim.calendar("alice@contoso.com")
    assert organizer["attendees"][0]["response"] == "Unknown"
    assert sim.calendar("bob@contoso.com") == []


def test_attendee_answers_show_on_the_organizer_item(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = meeting(alice, ["bob@contoso.com", "carol@contoso.com"], ["dave@contoso.com"])
    item.save(send_meeting_invitations="SendOnlyToAll")

    sim.respond("bob@contoso.com", "Accept", organizerItemId=item.id)
    [carol_copy] = sim.calendar("carol@contoso.com")
    sim.respond("carol@contoso.com", "Decline", itemId=carol_copy["itemId"])
    answer = sim.respond("dave@contoso.com", "Tentative", organizerItemId=item.id)
    assert answer["attendeeItem"]["freeBusy"] == "Tentative"

    fetched = alice.calendar.get(id=item.id)
    assert responses_by_email(fetched) == {
        "bob@contoso.com": "Accept",
        "carol@contoso.com": "Decline",
        "dave@contoso.com": "Tentative",
    }
    assert all(a.last_response_time for a in fetched.required_attendees)
    assert sim.calendar("bob@contoso.com")[0]["freeBusy"] == "Busy"
    assert sim.calendar("carol@contoso.com") == []  # a declined request leaves the calendar


def test_update_moves_copies_and_follows_attendee_changes(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = meeting(alice, ["bob@contoso.com", "carol@contoso.com"])
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    sim.respond("bob@contoso.com", "Accept", organizerItemId=item.id)

    item = alice.calendar.get(id=item.id)
    item.start, item.end = START + dt.timedelta(days=1), START + dt.timedelta(days=1, hours=2)
    item.required_attendees = [
        Attendee(mailbox=Mailbox(email_address=e)) for e in ("bob@contoso.com", "dave@contoso.com")
    ]
    item.save(update_fields=["start", "end", "required_attendees"], send_meeting_invitations="SendToAllAndSaveCopy")

    [bob_copy] = sim.calendar("bob@contoso.com")
    assert (bob_copy["start"], bob_copy["end"]) == ("2026-04-15T09:00:00Z", "2026-04-15T11:00:00Z")
    assert bob_copy["myResponse"] == "NoResponseReceived"  # a moved meeting asks again
    [dave_copy] = sim.calendar("dave@contoso.com")
    assert dave_copy["start"] == "2026-04-15T09:00:00Z" and not dave_copy["isCancelled"]
    [carol_copy] = sim.calendar("carol@contoso.com")
    assert carol_copy["isCancelled"] is True and carol_copy["freeBusy"] == "Free"
    assert carol_copy["subject"].startswith("Canceled: ")
    assert responses_by_email(alice.calendar.get(id=item.id)) == {
        "bob@contoso.com": "NoResponseReceived",
        "dave@contoso.com": "NoResponseReceived",
    }


def test_subject_only_update_keeps_answers(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = meeting(alice, ["bob@contoso.com"])
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    sim.respond("bob@contoso.com", "Accept", organizerItemId=item.id)
    item = alice.calendar.get(id=item.id)
    item.subject = "Renamed"
    item.save(update_fields=["subject"], send_meeting_invitations="SendToAllAndSaveCopy")
    [copy] = sim.calendar("bob@contoso.com")
    assert copy["subject"] == "Renamed" and copy["myResponse"] == "Accept"
    assert responses_by_email(alice.calendar.get(id=item.id)) == {"bob@contoso.com": "Accept"}


def test_update_without_sending_leaves_copies_alone(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = meeting(alice, ["bob@contoso.com"])
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    item = alice.calendar.get(id=item.id)
    item.subject = "Quietly renamed"
    item.save(update_fields=["subject"], send_meeting_invitations="SendToNone")
    assert sim.calendar("bob@contoso.com")[0]["subject"] == "Quarterly review"


@pytest.mark.parametrize(("send", "cancelled"), [("SendToAllAndSaveCopy", True), ("SendToNone", False)])
def test_delete_cancels_copies_only_when_sending(sim: SimClient, send: str, cancelled: bool) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = meeting(alice, ["bob@contoso.com", "carol@contoso.com"])
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    item.delete(send_meeting_cancellations=send)
    assert sim.calendar("alice@contoso.com") == []
    for email in ("bob@contoso.com", "carol@contoso.com"):
        [copy] = sim.calendar(email)
        assert copy["isCancelled"] is cancelled
        assert (copy["freeBusy"] == "Free") is cancelled


def kinds(sim: SimClient) -> list[tuple[str, str]]:
    return [(m["to"], m["kind"]) for m in sim.messages()]


def test_every_request_update_and_cancellation_is_recorded_per_attendee(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = meeting(alice, ["bob@contoso.com", "guest@example.org"])
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    assert kinds(sim) == [("bob@contoso.com", "request"), ("guest@example.org", "request")]

    item = alice.calendar.get(id=item.id)
    item.required_attendees = [
        Attendee(mailbox=Mailbox(email_address=e)) for e in ("bob@contoso.com", "dave@contoso.com")
    ]
    item.save(update_fields=["required_attendees"], send_meeting_invitations="SendToAllAndSaveCopy")
    assert kinds(sim)[2:] == [
        ("bob@contoso.com", "update"),
        ("dave@contoso.com", "request"),
        ("guest@example.org", "cancel"),
    ]
    alice.calendar.get(id=item.id).delete(send_meeting_cancellations="SendToAllAndSaveCopy")
    assert kinds(sim)[5:] == [("bob@contoso.com", "cancel"), ("dave@contoso.com", "cancel")]
    assert sim.messages(to="dave@contoso.com")[0]["organizerItemId"] == item.id


def test_an_appointment_turned_meeting_invites_its_attendees_once(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = meeting(alice, [])
    item.save(send_meeting_invitations="SendToNone")
    assert sim.messages() == [] and sim.calendar("bob@contoso.com") == []
    item = alice.calendar.get(id=item.id)
    item.required_attendees = [Attendee(mailbox=Mailbox(email_address="bob@contoso.com"))]
    item.save(update_fields=["required_attendees"], send_meeting_invitations="SendToAllAndSaveCopy")
    assert kinds(sim) == [("bob@contoso.com", "request")]
    [copy] = sim.calendar("bob@contoso.com")
    assert copy["myResponse"] == "NoResponseReceived"


def test_a_meeting_never_sent_is_deleted_without_cancellations(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = meeting(alice, ["bob@contoso.com"])
    item.save(send_meeting_invitations="SendToNone")
    item.delete(send_meeting_cancellations="SendToAllAndSaveCopy")
    assert sim.messages() == [] and sim.calendar("alice@contoso.com") == []

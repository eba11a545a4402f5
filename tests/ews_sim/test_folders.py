"""Folders and meeting replies through the real exchangelib: FindFolder, the well-known mail folders, and
accept / tentatively accept / decline / cancel sent through CreateItem."""

from __future__ import annotations

import datetime as dt

import pytest
from exchangelib import Attendee, CalendarItem, EWSDateTime, EWSTimeZone, Mailbox
from exchangelib.errors import (
    ErrorCalendarIsCancelledForAccept,
    ErrorCalendarIsNotOrganizer,
    ErrorCalendarIsOrganizerForAccept,
)
from exchangelib.items import AcceptItem, MeetingCancellation, MeetingRequest, MeetingResponse
from exchangelib.properties import ReferenceItemId

from ews_sim.testing import SimClient
from tests.ews_sim.conftest import Connect

UTC = EWSTimeZone("UTC")
START = EWSDateTime(2026, 4, 14, 9, 0, tzinfo=UTC)
ALICE, BOB, CAROL, DAVE = "alice@contoso.com", "bob@contoso.com", "carol@contoso.com", "dave@contoso.com"


def meeting(account: object, *attendees: str) -> CalendarItem:
    item = CalendarItem(
        account=account,
        folder=account.calendar,  # type: ignore[attr-defined]
        subject="Review",
        start=START,
        end=START + dt.timedelta(hours=1),
        required_attendees=[Attendee(mailbox=Mailbox(email_address=e)) for e in attendees],
    )
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    return item


def kinds(folder: object) -> list[tuple[str, str]]:
    return [(type(i).__name__, i.subject) for i in folder.all()]  # type: ignore[attr-defined]


def test_the_folder_tree_and_find_folder(connect: Connect) -> None:
    alice = connect(ALICE)
    names = sorted(f.name for f in alice.root.walk())  # FindFolder, Deep, from the root
    assert names == ["Calendar", "Deleted Items", "Inbox", "Sent Items", "Top of Information Store"]
    assert sorted(f.name for f in alice.root.tois.children) == ["Calendar", "Deleted Items", "Inbox", "Sent Items"]
    assert (alice.inbox.name, alice.sent.name, alice.trash.name) == ("Inbox", "Sent Items", "Deleted Items")
    assert [f.name for f in alice.calendar.children] == []  # Shallow, below the calendar
    assert alice.inbox.total_count == 0


def test_attendees_answer_and_the_organizer_records_each_answer(sim: SimClient, connect: Connect) -> None:
    alice = connect(ALICE)
    item = meeting(alice, BOB, CAROL, DAVE)
    bob, carol, dave = connect(BOB), connect(CAROL), connect(DAVE)
    assert kinds(bob.inbox) == [("MeetingRequest", "Review")]
    [request] = list(bob.inbox.all())
    assert isinstance(request, MeetingRequest) and request.start == START

    [bobs] = list(bob.calendar.all())
    assert bobs.accept() is True  # CreateItem AcceptItem, a copy saved to Sent Items
    [carols] = list(carol.calendar.all())
    carols.tentatively_accept()
    request_of_dave = next(iter(dave.inbox.all()))
    request_of_dave.decline()  # answering the request in the Inbox answers the meeting

    organizer = alice.calendar.get(id=item.id)
    answers = {a.mailbox.email_address: a.response_type for a in organizer.required_attendees}
    assert answers == {BOB: "Accept", CAROL: "Tentative", DAVE: "Decline"}
    assert all(a.last_response_time for a in organizer.required_attendees)
    assert bob.calendar.get(id=bobs.id).legacy_free_busy_status == "Busy"
    assert carol.calendar.get(id=carols.id).my_response_type == "Tentative"
    assert list(dave.calendar.all()) == [] and kinds(dave.trash) == [("CalendarItem", "Review")]
    [sent] = list(bob.sent.all())
    assert isinstance(sent, MeetingResponse) and (sent.subject, sent.response_type) == ("Accepted: Review", "Accept")
    assert sorted(kinds(alice.inbox)) == [
        ("MeetingResponse", "Accepted: Review"),
        ("MeetingResponse", "Declined: Review"),
        ("MeetingResponse", "Tentative: Review"),
    ]
    assert [m["kind"] for m in sim.messages()] == ["request"] * 3  # answers go to the organizer, not attendees


def test_replies_are_refused_where_exchange_refuses_them(connect: Connect) -> None:
    alice = connect(ALICE)
    item = meeting(alice, BOB)
    with pytest.raises(ErrorCalendarIsOrganizerForAccept):
        alice.calendar.get(id=item.id).accept()
    bob = connect(BOB)
    [bobs] = list(bob.calendar.all())
    with pytest.raises(ErrorCalendarIsNotOrganizer):
        bobs.cancel()
    alice.calendar.get(id=item.id).cancel()
    with pytest.raises(ErrorCalendarIsCancelledForAccept):
        bob.calendar.get(id=bobs.id).accept()


def test_send_only_keeps_no_copy_and_save_only_sends_nothing(connect: Connect) -> None:
    alice = connect(ALICE)
    item = meeting(alice, BOB, CAROL)
    bob, carol = connect(BOB), connect(CAROL)
    [bobs] = list(bob.calendar.all())
    bobs.accept(message_disposition="SendOnly")
    assert list(bob.sent.all()) == []
    [carols] = list(carol.calendar.all())
    draft = AcceptItem(
        account=carol, folder=carol.sent, reference_item_id=ReferenceItemId(id=carols.id, changekey=carols.changekey)
    )
    draft.send(message_disposition="SaveOnly")
    assert [(i.subject, i.is_draft) for i in carol.sent.all()] == [("Accepted: Review", True)]
    answers = {a.mailbox.email_address: a.response_type for a in alice.calendar.get(id=item.id).required_attendees}
    assert answers == {BOB: "Accept", CAROL: "NoResponseReceived"}


def test_cancel_calendar_item_cancels_for_everyone(sim: SimClient, connect: Connect) -> None:
    alice = connect(ALICE)
    item = meeting(alice, BOB, "guest@example.org")
    assert alice.calendar.get(id=item.id).cancel() is True  # CreateItem CancelCalendarItem
    assert list(alice.calendar.all()) == [] and kinds(alice.trash) == [("CalendarItem", "Review")]
    [copy] = list(alice.sent.all())
    assert isinstance(copy, MeetingCancellation) and copy.subject == "Canceled: Review"
    assert [(m["kind"], m["to"]) for m in sim.messages()][2:] == [("cancel", BOB), ("cancel", "guest@example.org")]
    bob = connect(BOB)
    [bobs] = list(bob.calendar.all())
    assert bobs.is_cancelled and bobs.subject == "Canceled: Review"
    assert kinds(bob.inbox) == [("MeetingRequest", "Review"), ("MeetingCancellation", "Canceled: Review")]


def test_moving_to_deleted_items_and_deleting_there(connect: Connect) -> None:
    alice = connect(ALICE)
    item = CalendarItem(account=alice, folder=alice.calendar, subject="old", start=START, end=START)
    item.save(send_meeting_invitations="SendToNone")
    item.move_to_trash()  # DeleteItem DeleteType=MoveToDeletedItems
    assert list(alice.calendar.all()) == []
    [trashed] = list(alice.trash.all())
    assert trashed.subject == "old" and alice.trash.total_count == 1
    trashed.delete()
    assert list(alice.trash.all()) == []

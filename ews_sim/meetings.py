"""Meeting semantics: invitations put copies in attendees' calendars, updates and cancellations follow them.

Exchange's calendar assistant places a received request in the attendee's calendar as Tentative
until the attendee answers; a decline removes it; a cancellation marks it cancelled and free.
"""

from __future__ import annotations

import copy

from ews_sim import series
from ews_sim.store import Attendee, CalendarItem, MailItem, Organisation, SentMessage, ext_label, new_item_id
from ews_sim.xmlutil import now

SEND_NONE = "SendToNone"
ANSWERS = {"Accept": "Busy", "Tentative": "Tentative"}


def resolve_addresses(org: Organisation, item: CalendarItem) -> None:
    """In-organisation attendees are kept under their mailbox's primary address, as Exchange resolves recipients to
    their directory entry and EWS and Graph write a resolved recipient's primary SMTP address."""
    for person in item.attendees():
        main = org.primary(person.email)
        if main != person.email.lower() and org.is_mailbox(main):
            person.email = main


def _in_org_attendees(org: Organisation, item: CalendarItem) -> dict[str, Attendee]:
    organizer = item.organizer.email.lower() if item.organizer else item.mailbox
    return {a.email.lower(): a for a in item.attendees() if org.is_mailbox(a.email) and a.email.lower() != organizer}


def _copy_for(org: Organisation, item: CalendarItem, mailbox: str) -> CalendarItem:
    existing = org.find_by_uid(mailbox, item.uid)
    if existing is not None and not existing.is_organizer_copy:
        return existing
    fresh = CalendarItem(
        item_id=new_item_id(),
        mailbox=mailbox,
        uid=item.uid,
        start=item.start,
        end=item.end,
        my_response="NoResponseReceived",
        free_busy="Tentative",
        is_meeting=True,
        organizer_item_id=item.item_id,
    )
    return org.add_item(fresh)


def _refresh_copy(target: CalendarItem, item: CalendarItem, reset_answer: bool) -> None:
    for name in (
        "subject",
        "body",
        "body_type",
        "location",
        "start",
        "end",
        "is_all_day",
        "start_tz",
        "end_tz",
        "sensitivity",
        "importance",
        "is_response_requested",
        "allow_new_time_proposal",
        "sequence",
        "is_online_meeting",
        "online_meeting_provider",
        "join_url",
        "when",
        "meeting_workspace_url",
        "net_show_url",
        "conference_type",
    ):
        setattr(target, name, getattr(item, name))
    series.copy_into(item, target)
    target.organizer = copy.copy(item.organizer)
    target.required = [copy.copy(a) for a in item.required]
    target.optional = [copy.copy(a) for a in item.optional]
    target.resources = [copy.copy(a) for a in item.resources]
    target.is_cancelled = False
    if reset_answer:
        target.my_response = "NoResponseReceived"
        target.free_busy = "Tentative"
    target.touch()


def message_for(
    item: CalendarItem, kind: str, holder: str, to: list[str], about: CalendarItem | None = None
) -> MailItem:
    """A meeting request or cancellation about ``item`` as ``holder`` keeps it (received, or the sender's copy)."""
    about = about or item
    cancel = kind == "cancel"
    return MailItem(
        item_id=new_item_id(),
        mailbox=holder,
        element="MeetingCancellation" if cancel else "MeetingRequest",
        subject=("Canceled: " if cancel else "") + item.subject,
        sender=item.mailbox,
        to=to,
        uid=item.uid,
        start=about.start,
        end=about.end,
        location=about.location,
        body=item.body,
    )


def _deliver(org: Organisation, item: CalendarItem, kind: str, to: str, occurrence: CalendarItem | None = None) -> None:
    """Record one meeting message the organizer's mailbox sent, so tests can count invitations per attendee, and put
    it in the attendee's Inbox when the attendee has a mailbox here."""
    about = occurrence or item
    if org.is_mailbox(to):
        received = message_for(item, kind, to.lower(), [to], about)
        held = org.find_by_uid(to, item.uid)
        received.associated_item_id = held.item_id if held is not None and not held.is_organizer_copy else None
        org.file("inbox", received)
    org.messages.append(
        SentMessage(
            seq=len(org.messages) + 1,
            kind=kind,
            to=to,
            organizer=item.mailbox,
            organizer_item_id=item.item_id,
            uid=item.uid,
            subject=item.subject,
            start=about.start,
            end=about.end,
            extended={ext_label(v.attrs): v.value for v in item.extended.values()},
        )
    )


def _invitees(item: CalendarItem) -> list[str]:
    organizer = item.organizer.email.lower() if item.organizer else item.mailbox
    return list(dict.fromkeys(a.email.lower() for a in item.attendees() if a.email.lower() != organizer))


def invited(item: CalendarItem) -> set[str]:
    """Everyone who holds this meeting's invitation: nobody while the organizer has never sent it."""
    return set(_invitees(item)) if item.meeting_request_was_sent else set()


def send_invitations(org: Organisation, item: CalendarItem, old_emails: set[str], times_changed: bool) -> None:
    """After the organizer saved ``item`` with invitations on: attendees not invited before get a request, the others
    an update, and every in-org one an up-to-date copy; attendees no longer on the list get a cancellation."""
    item.is_meeting = True
    item.meeting_request_was_sent = True
    attendees = _in_org_attendees(org, item)
    for person in item.attendees():
        if person.response == "Unknown" or (times_changed and person.response != "Organizer"):
            person.response = "NoResponseReceived"
            person.last_response_time = None
    current = _invitees(item)
    for email in attendees:
        target = _copy_for(org, item, email)
        _refresh_copy(target, item, reset_answer=times_changed or email not in old_emails)
    for email in current:
        _deliver(org, item, "update" if email in old_emails else "request", email)
    for email in sorted(old_emails - set(current)):
        _deliver(org, item, "cancel", email)
        cancel_copy(org, item, email)


def cancel_copy(org: Organisation, item: CalendarItem, mailbox: str) -> None:
    target = org.find_by_uid(mailbox, item.uid)
    if target is None or target.is_organizer_copy or target.is_cancelled:
        return
    target.is_cancelled = True
    target.free_busy = "Free"
    if not target.subject.startswith("Canceled: "):
        target.subject = "Canceled: " + target.subject
    target.touch()


def cancel_all(org: Organisation, item: CalendarItem) -> None:
    """The organizer cancels the meeting: every invited attendee gets a cancellation (none if it was never sent)."""
    for email in sorted(invited(item)):
        _deliver(org, item, "cancel", email)
        if org.is_mailbox(email):
            cancel_copy(org, item, email)


def cancel_occurrence(org: Organisation, master: CalendarItem, occurrence: CalendarItem) -> None:
    """The organizer deleted one occurrence of a sent series: each attendee gets its cancellation, and the occurrence
    stays on in-org attendees' copies marked cancelled until they remove it, as a received cancellation leaves it."""
    assert occurrence.original_start is not None
    for email in sorted(invited(master)):
        _deliver(org, master, "cancel", email, occurrence)
        copy_master = org.find_by_uid(email, master.uid) if org.is_mailbox(email) else None
        if copy_master is None or copy_master.is_organizer_copy or copy_master.recurrence is None:
            continue
        mine = series.instance(copy_master, occurrence.original_start)
        mine = copy.deepcopy(mine)
        mine.is_cancelled, mine.free_busy = True, "Free"
        if not mine.subject.startswith("Canceled: "):
            mine.subject = "Canceled: " + mine.subject
        series.save_exception(copy_master, mine)


VERBS = {"Accept": "Accepted", "Tentative": "Tentative", "Decline": "Declined"}


def response_for(target: CalendarItem, answer: str, holder: str, about_id: str | None) -> MailItem:
    """The attendee's answer to the meeting ``target`` is their copy of, as ``holder`` keeps it."""
    organizer = target.organizer.email if target.organizer else holder
    return MailItem(
        item_id=new_item_id(),
        mailbox=holder,
        element="MeetingResponse",
        subject=f"{VERBS[answer]}: {target.subject}",
        sender=target.mailbox,
        to=[organizer],
        uid=target.uid,
        response_type=answer,
        start=target.start,
        end=target.end,
        location=target.location,
        associated_item_id=about_id,
    )


def respond(org: Organisation, mailbox: str, target: CalendarItem, answer: str) -> CalendarItem | None:
    """The attendee ``mailbox`` answers the meeting its copy ``target`` belongs to; returns the organizer's item."""
    organizer_item = None
    if target.organizer is not None:
        organizer_item = org.item(target.organizer.email, target.organizer_item_id or "")
    stamp = now()
    if organizer_item is not None:
        for person in organizer_item.attendees():
            if person.email.lower() == mailbox:
                person.response, person.last_response_time = answer, stamp
        organizer_item.touch()
    if organizer_item is not None and org.is_mailbox(organizer_item.mailbox):
        org.file("inbox", response_for(target, answer, organizer_item.mailbox, organizer_item.item_id))
    if answer == "Decline":
        org.remove_item(target)
        org.file("deleteditems", target)  # a declined meeting goes to Deleted Items
    else:
        target.my_response = answer
        target.free_busy = ANSWERS[answer]
        target.touch()
    return organizer_item

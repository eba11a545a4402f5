"""Meeting responses and cancellations sent through CreateItem: AcceptItem, TentativelyAcceptItem, DeclineItem and
CancelCalendarItem (what exchangelib's ``item.accept()``, ``tentatively_accept()``, ``decline()`` and ``cancel()``
send), as Microsoft's "CreateItem operation (meeting request)" describes them.

``MessageDisposition``: ``SendAndSaveCopy`` (exchangelib's default) sends and files a copy in
``SavedItemFolderId``, else Sent Items; ``SendOnly`` sends without a copy; ``SaveOnly`` files a
draft there and sends nothing, so nobody's calendar changes. An answer is recorded on the
organizer's item and lands in the organizer's Inbox; the attendee's copy takes the answer (a
decline moves it to Deleted Items). A cancellation goes to every invited attendee (their copies
are marked cancelled, ``org.messages`` records it) and the organizer's item moves to Deleted Items.
Success is an empty ``<m:Items/>``, as in Microsoft's example. An answer to one occurrence answers
its whole series.
"""

from __future__ import annotations

from lxml import etree

from ews_sim import meetings, series
from ews_sim.ops.base import Context, MessageError, first_folder
from ews_sim.store import CalendarItem, MailItem, new_item_id
from ews_sim.xmlutil import local, mq, tq

ANSWERS = {"AcceptItem": "Accept", "TentativelyAcceptItem": "Tentative", "DeclineItem": "Decline"}
REPLIES = (*ANSWERS, "CancelCalendarItem")


def _meeting(ctx: Context, mailbox: str, node: etree._Element) -> CalendarItem:
    """The calendar item a reply refers to: by its id, or by a meeting message in a mail folder."""
    ref = node.find(tq("ReferenceItemId"))
    if ref is None:
        raise MessageError("ErrorItemNotFound", "The reply names no item.")
    item_id = ref.get("Id", "")
    filed = ctx.org.filed(mailbox, item_id)
    if filed is not None and isinstance(filed[1], MailItem):
        item_id = filed[1].associated_item_id or ""
    found = series.resolve(ctx.org, mailbox, item_id)
    if found is None:
        raise MessageError("ErrorItemNotFound")
    return series.master_of(ctx.org, mailbox, found) or found


def _saved_folder(ctx: Context, elem: etree._Element) -> str:
    container = elem.find(mq("SavedItemFolderId"))
    if container is None or not len(container):
        return "sentitems"
    kind, _ = first_folder(ctx, container)
    if kind == "calendar":
        raise MessageError("ErrorCannotCreateCalendarItemInNonCalendarFolder", "A reply cannot be saved there.")
    return kind


def reply(ctx: Context, elem: etree._Element, node: etree._Element) -> None:
    """Apply one AcceptItem / TentativelyAcceptItem / DeclineItem / CancelCalendarItem of a CreateItem request."""
    mailbox = ctx.acting_mailbox()
    disposition = elem.get("MessageDisposition", "SendAndSaveCopy")
    target = _meeting(ctx, mailbox, node)
    name = local(node)
    if name == "CancelCalendarItem":
        _cancel(ctx, elem, target, disposition)
        return
    answer = ANSWERS[name]
    verb = {"Accept": "Accept", "Tentative": "Tentative", "Decline": "Decline"}[answer]
    if target.is_organizer_copy:
        raise MessageError(f"ErrorCalendarIsOrganizerFor{verb}", "The organizer cannot answer their own meeting.")
    if target.is_cancelled:
        raise MessageError(f"ErrorCalendarIsCancelledFor{verb}", "The meeting was cancelled.")
    folder = _saved_folder(ctx, elem) if disposition != "SendOnly" else None
    if disposition == "SaveOnly":
        draft = meetings.response_for(target, answer, mailbox, target.item_id)
        draft.is_draft = True
        ctx.org.file(folder or "sentitems", draft)
        return
    organizer_item = meetings.respond(ctx.org, mailbox, target, answer)
    if folder is not None:
        about = organizer_item.item_id if organizer_item is not None else None
        sent = meetings.response_for(target, answer, mailbox, about)
        sent.associated_item_id = target.item_id if answer != "Decline" else None
        ctx.org.file(folder, sent)


def _cancel(ctx: Context, elem: etree._Element, target: CalendarItem, disposition: str) -> None:
    if not target.is_organizer_copy or not target.is_meeting:
        raise MessageError("ErrorCalendarIsNotOrganizer", "Only the organizer can cancel a meeting.")
    folder = _saved_folder(ctx, elem) if disposition != "SendOnly" else None
    invited = sorted(meetings.invited(target))
    if disposition != "SaveOnly":
        meetings.cancel_all(ctx.org, target)
        ctx.org.remove_item(target)
        ctx.org.file("deleteditems", target)
    if folder is not None:
        copy = meetings.message_for(target, "cancel", target.mailbox, invited)
        copy.item_id, copy.is_draft = new_item_id(), disposition == "SaveOnly"
        ctx.org.file(folder, copy)

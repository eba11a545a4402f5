"""DeleteItem: removes items; an organizer's meeting deleted with cancellations cancels the attendees' copies.

An occurrence's id (or ``OccurrenceItemId``) deletes that occurrence from its series; a meeting's
attendees get a cancellation of that occurrence when cancellations are sent. ``DeleteType``
``MoveToDeletedItems`` moves an item to Deleted Items (one already there is gone);
``HardDelete`` and ``SoftDelete`` remove it from the folders a client sees.
"""

from __future__ import annotations

from lxml import etree

from ews_sim import meetings, responses, series
from ews_sim.ops.base import Context, MessageError, Operation, find_any, items_container
from ews_sim.store import CalendarItem


class DeleteItem(Operation):
    name = "DeleteItem"

    def count(self, elem: etree._Element) -> int:
        return len(items_container(elem, "ItemIds"))

    def run(self, ctx: Context, elem: etree._Element) -> str:
        send = elem.get("SendMeetingCancellations", meetings.SEND_NONE)
        to_trash = elem.get("DeleteType") == "MoveToDeletedItems"
        mailbox = ctx.acting_mailbox()
        messages = []
        for ref in items_container(elem, "ItemIds"):
            try:
                kind, item = find_any(ctx, mailbox, ref)
            except MessageError as exc:
                messages.append(responses.message(self.name, code=exc.code, text=exc.text))
                continue
            if kind != "calendar" or not isinstance(item, CalendarItem):
                ctx.org.unfile(mailbox, item.item_id)
                if to_trash and kind != "deleteditems":
                    ctx.org.file("deleteditems", item)
            elif item.instance_kind is not None:
                master = ctx.org.item(mailbox, item.master_id or "")
                if master is not None and item.original_start is not None:
                    series.delete_occurrence(master, item.original_start)
                    if master.is_meeting and master.is_organizer_copy and send != meetings.SEND_NONE:
                        meetings.cancel_occurrence(ctx.org, master, item)
            else:
                if item.is_meeting and item.is_organizer_copy and send != meetings.SEND_NONE:
                    meetings.cancel_all(ctx.org, item)
                ctx.org.remove_item(item)
                if to_trash:
                    ctx.org.file("deleteditems", item)
            messages.append(responses.message(self.name))
        return responses.response(self.name, messages)

"""DeleteItem: removes items; an organizer's meeting deleted with cancellations cancels the attendees' copies.

An occurrence's id (or ``OccurrenceItemId``) deletes that occurrence from its series; a meeting's
attendees get a cancellation of that occurrence when cancellations are sent.
"""

from __future__ import annotations

from lxml import etree

from ews_sim import meetings, responses, series
from ews_sim.ops.base import Context, MessageError, Operation, find_item, items_container


class DeleteItem(Operation):
    name = "DeleteItem"

    def count(self, elem: etree._Element) -> int:
        return len(items_container(elem, "ItemIds"))

    def run(self, ctx: Context, elem: etree._Element) -> str:
        send = elem.get("SendMeetingCancellations", meetings.SEND_NONE)
        mailbox = ctx.acting_mailbox()
        messages = []
        for ref in items_container(elem, "ItemIds"):
            try:
                item = find_item(ctx, mailbox, ref)
            except MessageError as exc:
                messages.append(responses.message(self.name, code=exc.code, text=exc.text))
                continue
            if item.instance_kind is not None:
                master = ctx.org.item(mailbox, item.master_id or "")
                if master is not None and item.original_start is not None:
                    series.delete_occurrence(master, item.original_start)
                    if master.is_meeting and master.is_organizer_copy and send != meetings.SEND_NONE:
                        meetings.cancel_occurrence(ctx.org, master, item)
                messages.append(responses.message(self.name))
                continue
            if item.is_meeting and item.is_organizer_copy and send != meetings.SEND_NONE:
                meetings.cancel_all(ctx.org, item)
            ctx.org.remove_item(item)
            messages.append(responses.message(self.name))
        return responses.response(self.name, messages)

"""DeleteItem: removes items; an organizer's meeting deleted with cancellations cancels the attendees' copies."""

from __future__ import annotations

from lxml import etree

from ews_sim import meetings, responses
from ews_sim.ops.base import Context, Operation, items_container


class DeleteItem(Operation):
    name = "DeleteItem"

    def count(self, elem: etree._Element) -> int:
        return len(items_container(elem, "ItemIds"))

    def run(self, ctx: Context, elem: etree._Element) -> str:
        send = elem.get("SendMeetingCancellations", meetings.SEND_NONE)
        mailbox = ctx.acting_mailbox()
        messages = []
        for ref in items_container(elem, "ItemIds"):
            item = ctx.org.item(mailbox, ref.get("Id", ""))
            if item is None:
                messages.append(responses.message(self.name, code="ErrorItemNotFound"))
                continue
            if item.is_meeting and item.is_organizer_copy and send != meetings.SEND_NONE:
                meetings.cancel_all(ctx.org, item)
            ctx.org.remove_item(item)
            messages.append(responses.message(self.name))
        return responses.response(self.name, messages)

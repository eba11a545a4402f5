"""GetItem: the properties the shape asks for, extended properties echoed as stored.

Ids may name a calendar item, a meeting message in a mail folder, an occurrence of a series (its own
id, or ``OccurrenceItemId``) or a series' master (``RecurringMasterItemId``).
"""

from __future__ import annotations

from lxml import etree

from ews_sim import item_xml, responses
from ews_sim.mail_xml import any_item_xml
from ews_sim.ops.base import Context, MessageError, Operation, find_any, folder_id, items_container
from ews_sim.xmlutil import mq


class GetItem(Operation):
    name = "GetItem"
    error_inner = "<m:Items/>"

    def count(self, elem: etree._Element) -> int:
        return len(items_container(elem, "ItemIds"))

    def run(self, ctx: Context, elem: etree._Element) -> str:
        shape = item_xml.Shape.from_element(elem.find(mq("ItemShape")))
        mailbox = ctx.acting_mailbox()
        messages = []
        for ref in items_container(elem, "ItemIds"):
            try:
                kind, item = find_any(ctx, mailbox, ref)
            except MessageError as exc:
                messages.append(responses.message(self.name, code=exc.code, text=exc.text, inner=self.error_inner))
                continue
            write_ctx = item_xml.Ctx(in_org=ctx.org.is_mailbox, folder_id=folder_id(kind, mailbox), shape=shape)
            body = any_item_xml(item, write_ctx)
            messages.append(responses.message(self.name, inner=f"<m:Items>{body}</m:Items>"))
        return responses.response(self.name, messages)

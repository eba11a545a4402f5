"""GetItem: the properties the shape asks for, extended properties echoed as stored."""

from __future__ import annotations

from lxml import etree

from ews_sim import items, responses
from ews_sim.ops.base import Context, Operation, folder_id, items_container
from ews_sim.xmlutil import mq


class GetItem(Operation):
    name = "GetItem"
    error_inner = "<m:Items/>"

    def count(self, elem: etree._Element) -> int:
        return len(items_container(elem, "ItemIds"))

    def run(self, ctx: Context, elem: etree._Element) -> str:
        shape = items.Shape.from_element(elem.find(mq("ItemShape")))
        mailbox = ctx.acting_mailbox()
        write_ctx = items.Ctx(in_org=ctx.org.is_mailbox, folder_id=folder_id("calendar", mailbox), shape=shape)
        messages = []
        for ref in items_container(elem, "ItemIds"):
            item = ctx.org.item(mailbox, ref.get("Id", ""))
            if item is None:
                messages.append(responses.message(self.name, code="ErrorItemNotFound", inner=self.error_inner))
                continue
            messages.append(responses.message(self.name, inner=f"<m:Items>{items.item_xml(item, write_ctx)}</m:Items>"))
        return responses.response(self.name, messages)

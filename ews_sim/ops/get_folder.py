"""GetFolder: the distinguished folders (root, msgfolderroot, calendar, inbox, sentitems, deleteditems) by name
or id, as exchangelib resolves them before any item call."""

from __future__ import annotations

from lxml import etree

from ews_sim import folders, responses
from ews_sim.ops.base import Context, MessageError, Operation, items_container, resolve_folder


class GetFolder(Operation):
    name = "GetFolder"
    error_inner = "<m:Folders/>"

    def count(self, elem: etree._Element) -> int:
        return len(items_container(elem, "FolderIds"))

    def run(self, ctx: Context, elem: etree._Element) -> str:
        messages = []
        for ref in items_container(elem, "FolderIds"):
            try:
                kind, mailbox = resolve_folder(ctx, ref)
            except MessageError as exc:
                messages.append(responses.message(self.name, code=exc.code, text=exc.text, inner=self.error_inner))
                continue
            body = folders.folder_xml(ctx.org, kind, mailbox)
            messages.append(responses.message(self.name, inner=f"<m:Folders>{body}</m:Folders>"))
        return responses.response(self.name, messages)

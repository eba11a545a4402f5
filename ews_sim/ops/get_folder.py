"""GetFolder: the distinguished root and calendar folders exchangelib resolves before any item call."""

from __future__ import annotations

from lxml import etree

from ews_sim import responses
from ews_sim.ops.base import Context, MessageError, Operation, folder_id, items_container, resolve_folder
from ews_sim.xmlutil import attr

_NAMES = {
    "root": ("Folder", None, "Top of Information Store"),
    "msgfolderroot": ("Folder", "IPF.Note", "Top of Information Store"),
    "calendar": ("CalendarFolder", "IPF.Appointment", "Calendar"),
}


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
            messages.append(
                responses.message(self.name, inner=f"<m:Folders>{self._folder(ctx, kind, mailbox)}</m:Folders>")
            )
        return responses.response(self.name, messages)

    @staticmethod
    def _folder(ctx: Context, kind: str, mailbox: str) -> str:
        tag, folder_class, display = _NAMES[kind]
        parent = (
            "" if kind == "root" else f'<t:ParentFolderId Id={attr(folder_id("root", mailbox))} ChangeKey="AQAAAA=="/>'
        )
        klass = f"<t:FolderClass>{folder_class}</t:FolderClass>" if folder_class else ""
        total = len(ctx.org.calendar(mailbox)) if kind == "calendar" else 0
        children = 1 if kind != "calendar" else 0
        unread = "<t:UnreadCount>0</t:UnreadCount>" if tag == "Folder" else ""
        return (
            f'<t:{tag}><t:FolderId Id={attr(folder_id(kind, mailbox))} ChangeKey="AQAAAA=="/>{parent}{klass}'
            f"<t:DisplayName>{display}</t:DisplayName><t:TotalCount>{total}</t:TotalCount>"
            f"<t:ChildFolderCount>{children}</t:ChildFolderCount>{unread}</t:{tag}>"
        )

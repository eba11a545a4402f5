"""Each mailbox's folders: the root, the top of the information store, the calendar and the mail folders.

The tree is fixed: ``root`` holds ``msgfolderroot`` ("Top of Information Store"), which holds
``calendar``, ``inbox``, ``sentitems`` and ``deleteditems``. Folders are written with every
property exchangelib asks for, including ``DistinguishedFolderId``, which is how a client tells
the well-known folders from folders a user made.
"""

from __future__ import annotations

import base64

from ews_sim.store import Organisation
from ews_sim.xmlutil import attr, esc

# kind -> (element, folder class, display name, parent kind)
FOLDERS: dict[str, tuple[str, str | None, str, str | None]] = {
    "root": ("Folder", None, "Root", None),
    "msgfolderroot": ("Folder", "IPF.Note", "Top of Information Store", "root"),
    "calendar": ("CalendarFolder", "IPF.Appointment", "Calendar", "msgfolderroot"),
    "inbox": ("Folder", "IPF.Note", "Inbox", "msgfolderroot"),
    "sentitems": ("Folder", "IPF.Note", "Sent Items", "msgfolderroot"),
    "deleteditems": ("Folder", "IPF.Note", "Deleted Items", "msgfolderroot"),
}
CHANGE_KEY = "AQAAAA=="


def folder_id(kind: str, mailbox: str) -> str:
    return base64.b64encode(f"AAMk:{kind}:{mailbox}".encode()).decode()


def children(kind: str) -> list[str]:
    return [k for k, (_, _, _, parent) in FOLDERS.items() if parent == kind]


def descendants(kind: str) -> list[str]:
    """Every folder below ``kind``, parents before their children (a Deep traversal)."""
    out = []
    for child in children(kind):
        out.append(child)
        out.extend(descendants(child))
    return out


def total(org: Organisation, kind: str, mailbox: str) -> int:
    if kind == "calendar":
        return len(org.calendar(mailbox))
    return len(org.folders.get(mailbox, {}).get(kind, {}))


def folder_xml(org: Organisation, kind: str, mailbox: str) -> str:
    tag, folder_class, display, parent = FOLDERS[kind]
    parent_xml = ""
    if parent is not None:
        parent_xml = f"<t:ParentFolderId Id={attr(folder_id(parent, mailbox))} ChangeKey={attr(CHANGE_KEY)}/>"
    klass = f"<t:FolderClass>{folder_class}</t:FolderClass>" if folder_class else ""
    unread = "<t:UnreadCount>0</t:UnreadCount>" if tag == "Folder" else ""
    return (
        f"<t:{tag}><t:FolderId Id={attr(folder_id(kind, mailbox))} ChangeKey={attr(CHANGE_KEY)}/>{parent_xml}{klass}"
        f"<t:DisplayName>{esc(display)}</t:DisplayName><t:TotalCount>{total(org, kind, mailbox)}</t:TotalCount>"
        f"<t:ChildFolderCount>{len(children(kind))}</t:ChildFolderCount>"
        f"<t:DistinguishedFolderId>{kind}</t:DistinguishedFolderId>{unread}</t:{tag}>"
    )

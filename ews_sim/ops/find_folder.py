"""FindFolder: the folders below a folder, one level (Shallow) or all (Deep), paged by IndexedPageFolderView.

exchangelib walks a mailbox's folders this way (``account.root.walk()``, and when it looks for a
well-known folder it could not get by name). Restrictions on folders are not supported; a search
of deleted folders (SoftDeleted) finds none.
"""

from __future__ import annotations

from lxml import etree

from ews_sim import folders, responses
from ews_sim.ops.base import Context, MessageError, Operation, items_container, resolve_folder
from ews_sim.xmlutil import mq


class FindFolder(Operation):
    name = "FindFolder"

    def count(self, elem: etree._Element) -> int:
        return max(1, len(items_container(elem, "ParentFolderIds")))

    def run(self, ctx: Context, elem: etree._Element) -> str:
        traversal = elem.get("Traversal", "Shallow")
        paging = elem.find(mq("IndexedPageFolderView"))
        messages = []
        for ref in items_container(elem, "ParentFolderIds"):
            try:
                if elem.find(mq("Restriction")) is not None:
                    raise MessageError("ErrorUnsupportedQueryFilter", "Folder searches take no restriction here.")
                kind, mailbox = resolve_folder(ctx, ref)
            except MessageError as exc:
                messages.append(responses.message(self.name, code=exc.code, text=exc.text))
                continue
            found = {"Deep": folders.descendants, "Shallow": folders.children}.get(traversal, lambda k: [])(kind)
            offset, limit = 0, len(found)
            if paging is not None:
                offset = int(paging.get("Offset", "0"))
                limit = int(paging.get("MaxEntriesReturned") or len(found))
                if paging.get("BasePoint") == "End":
                    offset = max(0, len(found) - offset - limit)
            page = found[offset : offset + limit]
            last = offset + len(page) >= len(found)
            body = "".join(folders.folder_xml(ctx.org, k, mailbox) for k in page)
            messages.append(
                responses.message(
                    self.name,
                    inner=f'<m:RootFolder IndexedPagingOffset="{offset + len(page)}" TotalItemsInView="{len(found)}" '
                    f'IncludesLastItemInRange="{str(last).lower()}"><t:Folders>{body}</t:Folders></m:RootFolder>',
                )
            )
        return responses.response(self.name, messages)

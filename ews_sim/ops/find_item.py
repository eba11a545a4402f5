"""FindItem: restrictions, sort order, IndexedPageItemView paging and CalendarView expansion.

Without a CalendarView, a calendar's single items and recurring masters are found; with one, its
single items, occurrences and exceptions within the window (never masters), as Exchange expands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from ews_sim import item_xml, items, responses, series
from ews_sim.mail_xml import any_item_xml
from ews_sim.ops.base import Context, MessageError, Operation, first_folder, folder_id
from ews_sim.restrictions import compile_restriction, sort_key
from ews_sim.store import MAIL_FOLDERS
from ews_sim.xmlutil import local, mq, parse_dt, tq


def _matches(predicate: Callable[[Any], bool], item: Any) -> bool:
    """A restriction on a mail folder compares what its items have; a property they lack never matches."""
    try:
        return predicate(item)
    except AttributeError:
        return False


class FindItem(Operation):
    name = "FindItem"

    def count(self, elem: etree._Element) -> int:
        found = elem.find(mq("ParentFolderIds"))
        return max(1, len(found) if found is not None else 1)

    def run(self, ctx: Context, elem: etree._Element) -> str:
        try:
            body = self._find(ctx, elem)
        except MessageError as exc:
            return responses.response(self.name, [responses.message(self.name, code=exc.code, text=exc.text)])
        return responses.response(self.name, [responses.message(self.name, inner=body)])

    def _find(self, ctx: Context, elem: etree._Element) -> str:
        kind, mailbox = first_folder(ctx, elem.find(mq("ParentFolderIds")))
        restriction = elem.find(mq("Restriction"))
        view = elem.find(mq("CalendarView"))
        if view is not None and restriction is not None:
            raise MessageError("ErrorInvalidRestriction", "Restrictions are not allowed with a CalendarView.")
        if view is not None:
            start, end = parse_dt(view.get("StartDate", ""), ctx.zone), parse_dt(view.get("EndDate", ""), ctx.zone)
            if end < start:
                raise MessageError("ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate")
            # Microsoft's CalendarView reference: items ending before StartDate, or starting on or after EndDate,
            # are left out, so an item ending exactly at StartDate is in the view.
            found = series.view(ctx.org, mailbox, start, end, edge=True) if kind == "calendar" else []
        elif kind in MAIL_FOLDERS:
            found = sorted(ctx.org.folder(mailbox, kind).values(), key=lambda i: i.created)
        else:
            found = list(ctx.org.calendar(mailbox).values()) if kind == "calendar" else []
            found.sort(key=lambda i: (i.start, i.created))
        if restriction is not None and len(restriction):
            predicate = compile_restriction(next(items.iter_children(restriction)), ctx.zone)
            found = [i for i in found if _matches(predicate, i)]
        order = elem.find(mq("SortOrder"))
        if order is not None:
            for field in reversed(list(items.iter_children(order))):
                path = field.find(tq("FieldURI"))
                if path is not None:
                    found.sort(key=sort_key(path.get("FieldURI", "")), reverse=field.get("Order") == "Descending")
        shape = item_xml.Shape.from_element(elem.find(mq("ItemShape")))
        write_ctx = item_xml.Ctx(in_org=ctx.org.is_mailbox, folder_id=folder_id(kind, mailbox), shape=shape)
        if view is not None:
            limit = int(view.get("MaxEntriesReturned") or len(found) or 1)
            page, last = found[:limit], len(found) <= limit
            rendered = "".join(any_item_xml(i, write_ctx) for i in page)
            return (
                f'<m:RootFolder TotalItemsInView="{len(page)}" IncludesLastItemInRange="{str(last).lower()}">'
                f"<t:Items>{rendered}</t:Items></m:RootFolder>"
            )
        paging = next((c for c in items.iter_children(elem) if local(c).endswith("PageItemView")), None)
        offset, limit = 0, len(found)
        if paging is not None:
            if local(paging) != "IndexedPageItemView":
                raise MessageError("ErrorInvalidRequest", f"{local(paging)} is not supported.")
            offset = int(paging.get("Offset", "0"))
            limit = int(paging.get("MaxEntriesReturned") or len(found))
            if paging.get("BasePoint") == "End":
                offset = max(0, len(found) - offset - limit)
        page = found[offset : offset + limit]
        last = offset + len(page) >= len(found)
        rendered = "".join(any_item_xml(i, write_ctx) for i in page)
        return (
            f'<m:RootFolder IndexedPagingOffset="{offset + len(page)}" TotalItemsInView="{len(found)}" '
            f'IncludesLastItemInRange="{str(last).lower()}"><t:Items>{rendered}</t:Items></m:RootFolder>'
        )

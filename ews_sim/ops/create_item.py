"""CreateItem: appointments, meetings whose invitations land in attendees' calendars, and the responses and
cancellations of ``ews_sim.ops.meeting_replies``."""

from __future__ import annotations

import uuid

from lxml import etree

from ews_sim import items, meetings, responses, series
from ews_sim.ops import meeting_replies
from ews_sim.ops.base import Context, MessageError, Operation, first_folder, items_container
from ews_sim.store import MAIL_FOLDERS, Attendee, CalendarItem, new_item_id
from ews_sim.xmlutil import local, mq, now


def new_uid() -> str:
    # Exchange's global object ids are hex strings of this shape.
    return "040000008200E00074C5B7101A82E00800000000" + uuid.uuid4().hex.upper()


class CreateItem(Operation):
    name = "CreateItem"
    error_inner = "<m:Items/>"

    def count(self, elem: etree._Element) -> int:
        return len(items_container(elem, "Items"))

    def run(self, ctx: Context, elem: etree._Element) -> str:
        send = elem.get("SendMeetingInvitations", meetings.SEND_NONE)
        messages = []
        for node in items_container(elem, "Items"):
            try:
                if local(node) in meeting_replies.REPLIES:
                    meeting_replies.reply(ctx, elem, node)
                    messages.append(responses.message(self.name, inner="<m:Items/>"))
                    continue
                item = self._create(ctx, elem, node, send)
            except (MessageError, items.FieldError) as exc:
                messages.append(
                    responses.message(
                        self.name,
                        code=exc.code,
                        text=getattr(exc, "text", None) or str(exc),
                        inner=self.error_inner,
                    )
                )
                continue
            messages.append(responses.message(self.name, inner=f"<m:Items>{items.id_only_xml(item)}</m:Items>"))
        return responses.response(self.name, messages)

    def _create(self, ctx: Context, elem: etree._Element, node: etree._Element, send: str) -> CalendarItem:
        if local(node) != "CalendarItem":
            raise MessageError("ErrorInvalidItemForOperationCreateItem", "The simulator stores calendar items only.")
        kind, mailbox = first_folder(ctx, elem.find(mq("SavedItemFolderId")))
        if kind in MAIL_FOLDERS:
            raise MessageError(
                "ErrorCannotCreateCalendarItemInNonCalendarFolder", "Calendar items can only be created in a calendar."
            )
        stamp = now()
        item = CalendarItem(item_id=new_item_id(), mailbox=mailbox, uid=new_uid(), start=stamp, end=stamp)
        seen = set()
        for child in items.iter_children(node):
            items.apply_element(item, child, ctx.zone)
            seen.add(local(child))
        if not {"Start", "End"} <= seen:
            raise MessageError("ErrorInvalidRequest", "A calendar item needs Start and End.")
        # Exchange keeps the request's zone as the item's when it names none.
        item.start_tz = item.start_tz or ctx.zone_id
        item.end_tz = item.end_tz or ctx.zone_id
        meetings.resolve_addresses(ctx.org, item)
        items.check_times(item)
        items.snap_all_day(item, ctx.zone)
        if item.recurrence is not None:
            try:
                series.align(item)
            except series.SeriesError as exc:
                raise MessageError(exc.code, exc.message) from exc
        item.organizer = Attendee(email=mailbox, name=mailbox, response="Organizer")
        ctx.org.add_item(item)
        if item.attendees():
            item.is_meeting = True
            if send != meetings.SEND_NONE:
                meetings.send_invitations(ctx.org, item, old_emails=set(), times_changed=False)
        return item

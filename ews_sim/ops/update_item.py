"""UpdateItem: SetItemField / AppendToItemField / DeleteItemField with Exchange's change-key rules.

Changes apply to a copy and replace the stored item only when every change succeeded, so a bad
change leaves the item as it was.
"""

from __future__ import annotations

import copy

from lxml import etree

from ews_sim import items, meetings, responses, series
from ews_sim.ops.base import Context, MessageError, Operation, find_item, items_container
from ews_sim.store import CalendarItem, ext_key
from ews_sim.xmlutil import local, tq

ITEM_IDS = ("ItemId", "OccurrenceItemId", "RecurringMasterItemId")
ATTENDEE_LISTS = {"RequiredAttendees": "required", "OptionalAttendees": "optional", "Resources": "resources"}


class UpdateItem(Operation):
    name = "UpdateItem"
    error_inner = "<m:Items/>"

    def count(self, elem: etree._Element) -> int:
        return len(items_container(elem, "ItemChanges"))

    def run(self, ctx: Context, elem: etree._Element) -> str:
        resolution = elem.get("ConflictResolution", "AutoResolve")
        send = elem.get("SendMeetingInvitationsOrCancellations", meetings.SEND_NONE)
        messages = []
        for change in items_container(elem, "ItemChanges"):
            try:
                item = self._apply(ctx, change, resolution, send)
            except (MessageError, items.FieldError) as exc:
                messages.append(
                    responses.message(
                        self.name,
                        code=exc.code,
                        text=exc.text if isinstance(exc, MessageError) else exc.message,
                        inner=self.error_inner,
                    )
                )
                continue
            messages.append(
                responses.message(
                    self.name,
                    inner=f"<m:Items>{items.id_only_xml(item)}</m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>",
                )
            )
        return responses.response(self.name, messages)

    def _apply(self, ctx: Context, change: etree._Element, resolution: str, send: str) -> CalendarItem:
        ref = next((c for c in items.iter_children(change) if local(c) in ITEM_IDS), None)
        if ref is None:
            raise MessageError("ErrorInvalidRequest", "The change names no item.")
        mailbox = ctx.acting_mailbox()
        stored = find_item(ctx, mailbox, ref)
        key = ref.get("ChangeKey")
        if key and key != stored.change_key and resolution == "NeverOverwrite":
            raise MessageError("ErrorIrresolvableConflict")
        item = copy.deepcopy(stored)
        updates = change.find(tq("Updates"))
        for update in items.iter_children(updates if updates is not None else []):
            self._one(ctx, item, update)
        meetings.resolve_addresses(ctx.org, item)
        items.check_times(item)
        items.snap_all_day(item, ctx.zone)
        if stored.instance_kind is not None:
            return self._occurrence(ctx, mailbox, item, send)
        if item.recurrence is not None and (
            item.recurrence != stored.recurrence or (item.start, item.end) != (stored.start, stored.end)
        ):
            try:
                series.reschedule(item)
            except series.SeriesError as exc:
                raise MessageError(exc.code, exc.message) from exc
        elif item.recurrence is None:
            item.exceptions.clear()
            item.deleted_occurrences.clear()
        old_emails = meetings.invited(stored)
        times_changed = (item.start, item.end) != (stored.start, stored.end)
        item.touch()
        ctx.org.add_item(item)
        if item.is_organizer_copy and item.attendees() and send != meetings.SEND_NONE:
            item.sequence += 1
            meetings.send_invitations(ctx.org, item, old_emails=old_emails, times_changed=times_changed)
        elif item.is_organizer_copy and item.is_meeting and send != meetings.SEND_NONE:
            meetings.cancel_all(ctx.org, stored)
        if item.attendees():
            item.is_meeting = True
        return item

    @staticmethod
    def _occurrence(ctx: Context, mailbox: str, item: CalendarItem, send: str) -> CalendarItem:
        """A changed occurrence becomes an exception of its series; a meeting's attendees hear of it."""
        master = ctx.org.item(mailbox, item.master_id or "")
        if master is None:
            raise MessageError("ErrorItemNotFound")
        if item.recurrence is not None:
            raise MessageError("ErrorCalendarInvalidRecurrence", "An occurrence cannot have a recurrence of its own.")
        series.save_exception(master, item)
        if master.is_organizer_copy and master.attendees() and send != meetings.SEND_NONE:
            master.sequence += 1
            meetings.send_invitations(ctx.org, master, old_emails=meetings.invited(master), times_changed=False)
        return item

    @staticmethod
    def _one(ctx: Context, item: CalendarItem, update: etree._Element) -> None:
        kind = local(update)
        path = next((c for c in items.iter_children(update) if local(c).endswith("FieldURI")), None)
        if path is None:
            raise MessageError("ErrorInvalidPropertyRequest", "An update names no property.")
        if kind == "DeleteItemField":
            if local(path) == "ExtendedFieldURI":
                item.extended.pop(ext_key(dict(path.attrib)), None)
                return
            reset = items.DELETABLE_DEFAULTS.get(path.get("FieldURI", ""))
            if reset is None:
                raise MessageError("ErrorInvalidPropertyDelete", f"{path.get('FieldURI')} cannot be deleted.")
            reset(item)
            return
        holder = next((c for c in items.iter_children(update) if c is not path), None)
        if holder is None or local(holder) != "CalendarItem":
            raise MessageError("ErrorInvalidPropertySet", "The update carries no CalendarItem.")
        for child in items.iter_children(holder):
            list_name = ATTENDEE_LISTS.get(local(child))
            before = list(getattr(item, list_name)) if list_name and kind == "AppendToItemField" else None
            items.apply_element(item, child, ctx.zone)
            if before is not None:
                setattr(item, list_name, before + getattr(item, list_name))

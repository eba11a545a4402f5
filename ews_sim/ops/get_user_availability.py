"""GetUserAvailability: free/busy per mailbox, at most 100 mailboxes and 42 days a request.

Times come and go in the request's legacy TimeZone, without offsets, as Exchange's availability
service does. Events overlapping the window are returned whole, not clipped; recurring series are
expanded into their occurrences and exceptions within the window.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from lxml import etree

from ews_sim import responses, series
from ews_sim.ops.base import Context, Operation, SoapFault
from ews_sim.store import CalendarItem
from ews_sim.timezones import LegacyTimeZone
from ews_sim.xmlutil import M, T, child_text, esc, fmt_bool, mq, tq

MAX_MAILBOXES = 100
MAX_WINDOW = timedelta(days=42)
_MERGED_DIGITS = {"Free": 0, "Tentative": 1, "Busy": 2, "OOF": 3, "WorkingElsewhere": 4, "NoData": 5}
# A slot shows its strongest state, as Exchange merges overlapping items.
_STRENGTH = {0: 0, 1: 1, 4: 2, 2: 3, 3: 4}
_UTC_ZONE = (
    "<t:TimeZone><t:Bias>0</t:Bias><t:StandardTime><t:Bias>0</t:Bias><t:Time>00:00:00</t:Time><t:DayOrder>0</t:DayOrder>"
    "<t:Month>0</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek></t:StandardTime><t:DaylightTime><t:Bias>0</t:Bias>"
    "<t:Time>00:00:00</t:Time><t:DayOrder>0</t:DayOrder><t:Month>0</t:Month><t:DayOfWeek>Sunday</t:DayOfWeek>"
    "</t:DaylightTime></t:TimeZone>"
)
_WORKING_HOURS = (
    f"<t:WorkingHours>{_UTC_ZONE}<t:WorkingPeriodArray><t:WorkingPeriod>"
    "<t:DayOfWeek>Monday Tuesday Wednesday Thursday Friday</t:DayOfWeek>"
    "<t:StartTimeInMinutes>480</t:StartTimeInMinutes><t:EndTimeInMinutes>1020</t:EndTimeInMinutes>"
    "</t:WorkingPeriod></t:WorkingPeriodArray></t:WorkingHours>"
)


def _window_time(text: str | None, from_utc: Callable[[datetime], datetime]) -> datetime:
    """A TimeWindow bound in the request's zone; a bound with an offset is converted into it."""
    try:
        value = datetime.fromisoformat((text or "").strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise SoapFault("ErrorInvalidRequest", f"TimeWindow bound {text!r} is not a date-time.") from exc
    return from_utc(value.astimezone(UTC)) if value.tzinfo else value


def _local(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S")


class GetUserAvailability(Operation):
    name = "GetUserAvailability"
    needs_mailbox = False

    def count(self, elem: etree._Element) -> int:
        return len(self._addresses(elem))

    @staticmethod
    def _addresses(elem: etree._Element) -> list[str]:
        array = elem.find(mq("MailboxDataArray"))
        if array is None:
            return []
        out = []
        for data in array.findall(tq("MailboxData")):
            email = data.find(tq("Email"))
            out.append((child_text(email, "Address") or "").strip() if email is not None else "")
        return out

    def run(self, ctx: Context, elem: etree._Element) -> str:
        addresses = self._addresses(elem)
        if not addresses:
            raise SoapFault("ErrorMailboxDataArrayEmpty", "MailboxDataArray must contain at least one entry.")
        if len(addresses) > MAX_MAILBOXES:
            raise SoapFault(
                "ErrorMailboxDataArrayTooBig",
                f"Mailbox data array is too big. The maximum allowed is {MAX_MAILBOXES}; "
                f"{len(addresses)} were requested.",
            )
        zone_elem = elem.find(tq("TimeZone"))
        zone = LegacyTimeZone.from_element(zone_elem) if zone_elem is not None else None
        options = elem.find(tq("FreeBusyViewOptions"))
        if options is None:
            raise SoapFault("ErrorInvalidRequest", "Only FreeBusyViewOptions requests are supported.")
        window = options.find(tq("TimeWindow"))
        to_utc = zone.to_utc if zone else (lambda d: d.replace(tzinfo=UTC))
        from_utc = zone.from_utc if zone else (lambda d: d.astimezone(UTC).replace(tzinfo=None))
        start_local = _window_time(child_text(window, "StartTime"), from_utc)
        end_local = _window_time(child_text(window, "EndTime"), from_utc)
        if end_local <= start_local:
            raise SoapFault("ErrorInvalidTimeInterval")
        if end_local - start_local > MAX_WINDOW:
            days = (end_local - start_local).days + (1 if (end_local - start_local) % timedelta(days=1) else 0)
            raise SoapFault(
                "ErrorTimeIntervalTooBig",
                "The requested time duration specified for FreeBusyViewOptions.TimeWindow is too long. "
                f"The allowed limit = 42 days; the actual limit = {days} days.",
            )
        view = child_text(options, "RequestedView") or "DetailedMerged"
        interval = int(child_text(options, "MergedFreeBusyIntervalInMinutes") or "30")
        start, end = to_utc(start_local), to_utc(end_local)
        parts = []
        for address in addresses:
            code = ctx.mailbox_faults.get(address.lower()) or ctx.mailbox_faults.get(ctx.org.primary(address))
            if code is None and not ctx.org.is_mailbox(address):
                code = "ErrorMailRecipientNotFound"
            if code is not None:
                parts.append(self._error(address, code))
                continue
            events = series.view(ctx.org, address, start, end)
            parts.append(self._view(view, events, start_local, end_local, interval, from_utc))
        return (
            f'<m:GetUserAvailabilityResponse xmlns:m="{M}" xmlns:t="{T}"><m:FreeBusyResponseArray>'
            f"{''.join(parts)}</m:FreeBusyResponseArray></m:GetUserAvailabilityResponse>"
        )

    @staticmethod
    def _error(address: str, code: str) -> str:
        text = (
            f"Unable to resolve e-mail address {address} to an Active Directory object."
            if code == "ErrorMailRecipientNotFound"
            else responses.message_text(code)
        )
        return (
            '<m:FreeBusyResponse><m:ResponseMessage ResponseClass="Error">'
            f"<m:MessageText>{esc(text)}</m:MessageText><m:ResponseCode>{code}</m:ResponseCode>"
            "<m:DescriptiveLinkKey>0</m:DescriptiveLinkKey></m:ResponseMessage>"
            "<m:FreeBusyView><t:FreeBusyViewType>None</t:FreeBusyViewType></m:FreeBusyView></m:FreeBusyResponse>"
        )

    @staticmethod
    def _view(
        view: str,
        events: list[CalendarItem],
        start: datetime,
        end: datetime,
        interval: int,
        from_utc: Callable[[datetime], datetime],
    ) -> str:
        detailed = view.startswith("Detailed")
        spans = [(from_utc(item.start), from_utc(item.end)) for item in events]
        parts = []
        merged = ""
        if view.endswith("Merged") or view == "MergedOnly":
            slots = int((end - start) / timedelta(minutes=interval)) or 1
            digits = [0] * slots
            for item, (local_start, local_end) in zip(events, spans, strict=True):
                digit = _MERGED_DIGITS.get(item.free_busy, 2)
                first = max(0, int((local_start - start) / timedelta(minutes=interval)))
                last = min(slots, -int(-(local_end - start) // timedelta(minutes=interval)))
                for n in range(first, last):
                    if _STRENGTH.get(digit, 0) > _STRENGTH.get(digits[n], 0):
                        digits[n] = digit
            merged = f"<t:MergedFreeBusy>{''.join(map(str, digits))}</t:MergedFreeBusy>"
        if view != "MergedOnly" and events:
            for item, (local_start, local_end) in zip(events, spans, strict=True):
                details = ""
                if detailed:
                    location = f"<t:Location>{esc(item.location)}</t:Location>" if item.location else ""
                    details = (
                        f"<t:CalendarEventDetails><t:ID>{esc(item.item_id[:64])}</t:ID>"
                        f"<t:Subject>{esc(item.subject)}</t:Subject>{location}"
                        f"<t:IsMeeting>{fmt_bool(item.is_meeting)}</t:IsMeeting>"
                        f"<t:IsRecurring>{fmt_bool(item.is_recurring)}</t:IsRecurring>"
                        f"<t:IsException>{fmt_bool(item.instance_kind == 'Exception')}</t:IsException>"
                        f"<t:IsReminderSet>{fmt_bool(item.reminder_is_set)}</t:IsReminderSet>"
                        "<t:IsPrivate>false</t:IsPrivate></t:CalendarEventDetails>"
                    )
                parts.append(
                    f"<t:CalendarEvent><t:StartTime>{_local(local_start)}</t:StartTime>"
                    f"<t:EndTime>{_local(local_end)}</t:EndTime>"
                    f"<t:BusyType>{item.free_busy}</t:BusyType>{details}</t:CalendarEvent>"
                )
        events_xml = f"<t:CalendarEventArray>{''.join(parts)}</t:CalendarEventArray>" if parts else ""
        hours = _WORKING_HOURS if view != "MergedOnly" else ""
        return (
            '<m:FreeBusyResponse><m:ResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
            f"</m:ResponseMessage><m:FreeBusyView><t:FreeBusyViewType>{view}</t:FreeBusyViewType>{merged}"
            f"{events_xml}{hours}</m:FreeBusyView></m:FreeBusyResponse>"
        )

    def error_messages(self, elem: etree._Element, code: str, text: str | None = None) -> str:
        parts = "".join(self._error(a, code) for a in self._addresses(elem))
        return (
            f'<m:GetUserAvailabilityResponse xmlns:m="{M}" xmlns:t="{T}"><m:FreeBusyResponseArray>{parts}'
            "</m:FreeBusyResponseArray></m:GetUserAvailabilityResponse>"
        )

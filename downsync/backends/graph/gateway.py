"""The Microsoft Graph implementation of ``CalendarGateway``."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from downsync.backends import OpenContext
from downsync.backends.graph import GraphOptions, events
from downsync.backends.graph.client import UTC_PREFERENCE, GraphClient
from downsync.backends.graph.schedule import GraphAvailability
from downsync.core.errors import MAILBOX_NOT_FOUND, Conflict, PermanentError
from downsync.core.model import Appointment, Found, FreeBusy, ItemRef, Meeting, MeetingView, Tag

TEAMS_REFUSED = (
    "MS Teams is not allowed for the organizer's calendar (allowedOnlineMeetingProviders): the meeting was created"
    " without an online meeting and the location kept as text"
)


def user(mailbox: str) -> str:
    return f"/users/{quote(mailbox, safe='@')}"


def event_path(mailbox: str, event_id: str) -> str:
    return f"{user(mailbox)}/events/{quote(event_id, safe='')}"


class GraphGateway:
    backend = "graph"

    def __init__(self, options: GraphOptions, context: OpenContext) -> None:
        settings = context.settings
        self.client = GraphClient(
            options, timeout=settings.exchange_timeout_seconds, connections=max(64, context.calls_at_once)
        )
        self.availability = GraphAvailability(self.client, context.tenant_id, settings.availability_concurrency)
        # Join links of online meetings this process just created, so sending them needs no extra read.
        self._joins: OrderedDict[str, str | None] = OrderedDict()
        self._joins_lock = threading.Lock()

    def find(self, mailbox: str, tag: Tag) -> list[Found]:
        out: list[Found] = []
        page: Any = self.client.call("GET", f"{user(mailbox)}/events", mailbox, params=events.find_params(tag))
        while True:
            out += [f for f in (events.found(e, tag) for e in page.get("value", [])) if f is not None]
            link = page.get("@odata.nextLink")
            if not link:
                return out
            page = self.client.call("GET", link, mailbox)

    def _create(self, mailbox: str, body: dict[str, Any], key: str) -> dict[str, Any]:
        body["transactionId"] = events.transaction_id(key)
        return self.client.call("POST", f"{user(mailbox)}/events", mailbox, body=body, write=True)

    def create_appointment(self, mailbox: str, tag: Tag, state: Appointment, key: str) -> ItemRef:
        event = self._create(mailbox, events.fields(state, tag, state.fingerprint), key)
        return ItemRef(event["id"], event["@odata.etag"])

    def _patch(self, mailbox: str, ref: ItemRef, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.call(
            "PATCH", event_path(mailbox, ref.id), mailbox, body=body, headers={"If-Match": ref.change_key}, write=True
        )

    def update_appointment(self, mailbox: str, ref: ItemRef, tag: Tag, state: Appointment) -> ItemRef:
        event = self._patch(mailbox, ref, events.fields(state, tag, state.fingerprint))
        return ItemRef(event["id"], event["@odata.etag"])

    def _delete(self, mailbox: str, refs: Sequence[ItemRef], cancel: bool) -> None:
        for ref in refs:
            try:
                if cancel:
                    path = f"{event_path(mailbox, ref.id)}/cancel"
                    self.client.call("POST", path, mailbox, body={"comment": ""}, write=True)
                else:
                    self.client.call("DELETE", event_path(mailbox, ref.id), mailbox, write=True)
            except Conflict as gone:
                if gone.code != "ErrorItemNotFound":
                    raise

    def remove(self, mailbox: str, refs: Sequence[ItemRef]) -> None:
        self._delete(mailbox, refs, cancel=False)

    def create_meeting_draft(self, organizer: str, tag: Tag, state: Meeting, key: str) -> ItemRef:
        body = events.fields(state, tag, None)
        if state.online:
            # The online meeting is made now, so its join link is in the body the invitations carry.
            body |= {"isOnlineMeeting": True, "onlineMeetingProvider": events.TEAMS}
        event = self._create(organizer, body, key)
        if state.online:
            self._remember(event["id"], ((event.get("onlineMeeting") or {}).get("joinUrl")))
        return ItemRef(event["id"], event["@odata.etag"])

    def _remember(self, event_id: str, join_url: str | None) -> None:
        with self._joins_lock:
            self._joins[event_id] = join_url
            while len(self._joins) > 10_000:
                self._joins.popitem(last=False)

    def _join_url(self, organizer: str, ref: ItemRef) -> str | None:
        with self._joins_lock:
            if ref.id in self._joins:
                return self._joins[ref.id]
        event = self.client.call(
            "GET", event_path(organizer, ref.id), organizer, params={"$select": "isOnlineMeeting,onlineMeeting"}
        )
        if event.get("@odata.etag") not in (None, ref.change_key):
            raise Conflict("ErrorIrresolvableConflict", "the meeting changed since it was read")
        return (event.get("onlineMeeting") or {}).get("joinUrl")

    def send_meeting(self, organizer: str, ref: ItemRef, tag: Tag, state: Meeting) -> tuple[ItemRef, str | None]:
        join = self._join_url(organizer, ref) if state.online else None
        body = events.fields(state, tag, state.fingerprint, events.with_join_link(state.body, join))
        body["attendees"] = events.attendees(state)
        if state.online and join is None:
            body |= {"isOnlineMeeting": True, "onlineMeetingProvider": events.TEAMS}
        # The fenced PATCH with attendees is what sends: requests to new attendees, updates to the others.
        event = self._patch(organizer, ref, body)
        note = None
        if state.online and join is None:
            join = (event.get("onlineMeeting") or {}).get("joinUrl")
            if join:
                # A meeting that became online now: its link goes into the body too (attendees get one more update).
                fresh = ItemRef(event["id"], event["@odata.etag"])
                event = self._patch(
                    organizer,
                    fresh,
                    {"body": {"contentType": "text", "content": events.with_join_link(state.body, join)}},
                )
            else:
                note = TEAMS_REFUSED
        return ItemRef(event["id"], event["@odata.etag"]), note

    def cancel_meeting(self, organizer: str, refs: Sequence[ItemRef]) -> None:
        self._delete(organizer, refs, cancel=True)

    def read_meeting(self, organizer: str, tag: Tag) -> MeetingView | None:
        sent = [f for f in self.find(organizer, tag) if f.fingerprint is not None]
        if not sent:
            return None
        chosen = min(sent, key=lambda f: (f.tenant is None, f.ref.id))
        event = self.client.call(
            "GET",
            event_path(organizer, chosen.ref.id),
            organizer,
            params={"$select": "subject,body,location,start,end,attendees"},
            headers={"Prefer": f'{UTC_PREFERENCE}, outlook.body-content-type="text"'},
        )
        return events.meeting_view(event)

    def resolve(self, address: str) -> str | None:
        # The calendar's owner is the mailbox's primary address, and reading it needs only the calendar permission
        # the app has anyway.
        try:
            calendar = self.client.call("GET", f"{user(address)}/calendar", address, params={"$select": "owner"})
            owner = ((calendar or {}).get("owner") or {}).get("address")
            if owner:
                return str(owner)
        except PermanentError as error:
            if error.code == MAILBOX_NOT_FOUND:
                return None
        # The mailbox exists but its calendar is out of the app's reach (its access policy, hosted on-premises): the
        # directory knows it too, if the app may read users.
        try:
            found = self.client.call("GET", user(address), address, params={"$select": "mail"})
        except PermanentError:
            return None
        return str((found or {}).get("mail") or "") or None

    def free_busy(
        self, mailboxes: Sequence[str], start: datetime, end: datetime, deadline: float
    ) -> dict[str, FreeBusy]:
        return self.availability(mailboxes, start, end, deadline)

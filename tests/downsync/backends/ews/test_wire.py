"""The request bodies written directly (downsync/backends/ews/wire.py) are the ones exchangelib writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from exchangelib import CalendarItem
from exchangelib.fields import FieldPath
from exchangelib.restriction import Q, Restriction
from exchangelib.services import CreateItem, FindItem
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from downsync.backends.ews.connection import Connection, account, calendar
from downsync.backends.ews.items import FindTagged, tag_fields, written_fields
from downsync.backends.ews.wire import CreateItems, FindTaggedItems, NewItem
from downsync.core.model import Appointment, Tag

CONNECTION = Connection(
    tenant_id=1,
    url="http://127.0.0.1:9/EWS/Exchange.asmx",
    username="svc@example.com",
    password="x",
    auth_type="basic",
    build="15.1.2507.6",
    timeout=5,
)
ACCOUNT = account(CONNECTION, "Someone@Example.com")
START = datetime(2031, 3, 3, 9, tzinfo=UTC)

texts = st.text(max_size=12)
tags = st.builds(
    Tag, tenant=st.text(min_size=1, max_size=8), kind=st.sampled_from(["postback", "meeting"]), event_id=texts
)
states = st.builds(
    Appointment,
    subject=texts,
    body=texts,
    location=st.none() | texts,
    start=st.integers(0, 10**8).map(lambda s: START + timedelta(seconds=s)),
    end=st.integers(1, 10**6).map(lambda s: START + timedelta(days=1200, seconds=s)),
)


def canonical(element: etree._Element) -> bytes:
    # Namespace declarations sit on different elements in the two; c14n of a re-parse ignores that.
    return etree.tostring(etree.fromstring(etree.tostring(element)), method="c14n2", strip_text=False)


@settings(max_examples=200, deadline=None)
@given(tag=tags, state=states, draft=st.booleans())
def test_the_create_body_is_exchangelibs(tag: Tag, state: Appointment, draft: bool) -> None:
    fingerprint = None if draft else state.fingerprint
    folder = calendar(ACCOUNT)
    item = CalendarItem(account=ACCOUNT, folder=folder, **written_fields(state, fingerprint), **tag_fields(tag))
    item.clean(version=ACCOUNT.version)
    theirs = CreateItem(account=ACCOUNT).get_payload(
        items=[item], folder=folder, message_disposition="SaveOnly", send_meeting_invitations="SendToNone"
    )
    ours = CreateItems(account=ACCOUNT).get_payload(items=[NewItem(tag, state, fingerprint)], folder=folder)
    assert canonical(ours).decode() == canonical(theirs).decode()


@settings(max_examples=200, deadline=None)
@given(tag=tags, page_size=st.integers(1, 1000), offset=st.integers(0, 1000))
def test_the_find_body_is_exchangelibs(tag: Tag, page_size: int, offset: int) -> None:
    folder = calendar(ACCOUNT)
    restriction = Restriction(
        Q(downsync_event_id=tag.event_id, downsync_kind=tag.kind)
        & (Q(downsync_tenant=tag.tenant) | ~Q(downsync_tenant__exists=True)),
        folders=[folder],
        applies_to=Restriction.ITEMS,
    )
    # A list, not the set FindTagged passes, so exchangelib's order is the one written.
    fields = [FieldPath(field=CalendarItem.get_field_by_fieldname(name)) for name in FindTagged.FIELDS]
    arguments = dict(order_fields=None, query_string=None, shape="IdOnly", depth="Shallow", calendar_view=None)
    theirs = FindItem(account=ACCOUNT).get_payload(
        folders=[folder],
        additional_fields=fields,
        restriction=restriction,
        page_size=page_size,
        offset=offset,
        **arguments,
    )
    ours = FindTaggedItems(account=ACCOUNT, tag=tag).get_payload(
        folders=[folder], additional_fields=fields, restriction=None, page_size=page_size, offset=offset, **arguments
    )
    assert canonical(ours).decode() == canonical(theirs).decode()

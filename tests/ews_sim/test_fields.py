"""Fields as Exchange treats them, through the real exchangelib: all-day snapping, view edges, multi-valued
restrictions, subject length, deletable and searchable fields."""

from __future__ import annotations

import httpx
import requests
from exchangelib import CalendarItem, EWSDate, EWSDateTime, EWSTimeZone

from ews_sim.testing import SERVICE_ACCOUNT, SERVICE_PASSWORD, SimClient
from tests.ews_sim.conftest import Connect

BERLIN = EWSTimeZone("Europe/Berlin")
UTC = EWSTimeZone("UTC")


def at(day: int, hour: int, minute: int = 0, tz: EWSTimeZone = UTC) -> EWSDateTime:
    return EWSDateTime(2026, 3, day, hour, minute, tzinfo=tz)


def save(account: object, subject: str, start: EWSDateTime, end: EWSDateTime, **fields: object) -> CalendarItem:
    item = CalendarItem(account=account, folder=account.calendar, subject=subject, start=start, end=end, **fields)  # type: ignore[attr-defined]
    item.save(send_meeting_invitations="SendToNone")
    return item


def test_all_day_items_span_whole_days_in_their_time_zone(sim: SimClient, connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    # Non-midnight times: the start moves back to midnight, the end forward, in the item's zone (Berlin).
    item = save(alice, "offsite", at(20, 13, tz=BERLIN), at(21, 9, 30, tz=BERLIN), is_all_day=True)
    [stored] = sim.calendar("alice@contoso.com")
    assert (stored["start"], stored["end"]) == ("2026-03-19T23:00:00Z", "2026-03-21T23:00:00Z")
    fetched = alice.calendar.get(id=item.id)
    assert (fetched.start, fetched.end) == (EWSDate(2026, 3, 20), EWSDate(2026, 3, 21))  # exchangelib's inclusive end
    # Changing the times of an all-day item snaps them again.
    fetched.start, fetched.end = at(25, 8, tz=BERLIN), at(25, 9, tz=BERLIN)
    fetched.save(update_fields=["start", "end"], send_meeting_invitations="SendToNone")
    assert sim.calendar("alice@contoso.com")[0]["start"] == "2026-03-24T23:00:00Z"
    assert sim.calendar("alice@contoso.com")[0]["end"] == "2026-03-25T23:00:00Z"


def test_a_calendar_view_holds_an_item_ending_at_its_start_but_not_one_starting_at_its_end(connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    save(alice, "ends at the start", at(16, 8), at(16, 9))
    save(alice, "inside", at(16, 10), at(16, 11))
    save(alice, "starts at the end", at(16, 12), at(16, 13))
    assert [i.subject for i in alice.calendar.view(start=at(16, 9), end=at(16, 12))] == ["ends at the start", "inside"]


def test_categories_match_when_any_value_does(connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    save(alice, "both", at(16, 8), at(16, 9), categories=["Red", "Blue"])
    save(alice, "red", at(16, 10), at(16, 11), categories=["Red"])
    save(alice, "none", at(16, 12), at(16, 13))
    assert sorted(i.subject for i in alice.calendar.filter(categories="blue")) == ["both"]
    assert sorted(i.subject for i in alice.calendar.filter(categories="Red")) == ["both", "red"]
    assert sorted(i.subject for i in alice.calendar.filter(categories__contains="ed")) == ["both", "red"]
    assert sorted(i.subject for i in alice.calendar.exclude(categories__exists=True)) == ["none"]


def soap(sim: SimClient, operation: str) -> requests.Response:
    """A raw EWS request as alice, for what exchangelib itself refuses to send."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header>'
        '<t:RequestServerVersion Version="Exchange2016"/><t:ExchangeImpersonation><t:ConnectingSID>'
        "<t:PrimarySmtpAddress>alice@contoso.com</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
        f"</s:Header><s:Body>{operation}</s:Body></s:Envelope>"
    )
    return requests.post(sim.ews_url, data=body.encode(), auth=(SERVICE_ACCOUNT, SERVICE_PASSWORD), timeout=10)


def test_subjects_are_cut_to_255_characters_and_may_be_deleted(sim: SimClient, connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    # exchangelib refuses a longer subject itself; other clients send them, and Exchange cuts them.
    created = soap(
        sim,
        '<m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem>'
        f"<t:Subject>{'x' * 300}</t:Subject><t:Start>2026-03-16T08:00:00Z</t:Start>"
        "<t:End>2026-03-16T09:00:00Z</t:End></t:CalendarItem></m:Items></m:CreateItem>",
    )
    assert created.status_code == 200 and "NoError" in created.text
    [item] = list(alice.calendar.all())
    assert item.subject == "x" * 255
    item.subject = None
    item.save(update_fields=["subject"], send_meeting_invitations="SendToNone")  # DeleteItemField item:Subject
    assert sim.calendar("alice@contoso.com")[0]["subject"] == ""
    assert alice.calendar.get(id=item.id).subject is None


def test_fields_are_stored_and_returned(connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    item = save(
        alice,
        "fields",
        at(16, 8),
        at(16, 9),
        in_reply_to="<abc@example.org>",
        when="Monday at eight",
        meeting_workspace_url="https://workspace.example.org/m/1",
        net_show_url="https://netshow.example.org/s/1",
        culture="de-DE",
        conference_type=2,
    )
    fetched = alice.calendar.get(id=item.id)
    assert (fetched.in_reply_to, fetched.when, fetched.culture, fetched.conference_type) == (
        "<abc@example.org>",
        "Monday at eight",
        "de-DE",
        2,
    )
    assert fetched.meeting_workspace_url == "https://workspace.example.org/m/1"
    assert fetched.net_show_url == "https://netshow.example.org/s/1"
    fetched.when, fetched.net_show_url = None, None
    fetched.save(update_fields=["when", "net_show_url"], send_meeting_invitations="SendToNone")
    again = alice.calendar.get(id=item.id)
    assert (again.when, again.net_show_url, again.conference_type) == (None, None, 2)


def test_reminder_when_and_conference_type_are_searchable(connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    save(alice, "reminded", at(16, 8), at(16, 9), reminder_is_set=True, reminder_minutes_before_start=30)
    save(alice, "quiet", at(16, 10), at(16, 11), reminder_is_set=False, when="later", conference_type=1)
    assert [i.subject for i in alice.calendar.filter(reminder_is_set=True)] == ["reminded"]
    assert [i.subject for i in alice.calendar.filter(reminder_minutes_before_start__gt=20)] == ["reminded"]
    assert [i.subject for i in alice.calendar.filter(when="LATER")] == ["quiet"]
    assert [i.subject for i in alice.calendar.filter(conference_type=1)] == ["quiet"]


def test_reminder_due_by_is_searchable(sim: SimClient, connect: Connect) -> None:
    """exchangelib refuses to filter on reminder_due_by itself, so this restriction goes as raw SOAP."""
    alice = connect("alice@contoso.com")
    save(alice, "early", at(16, 8), at(16, 9), reminder_is_set=True)
    save(alice, "late", at(18, 8), at(18, 9), reminder_is_set=True)
    answer = soap(
        sim,
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        '<t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/></t:AdditionalProperties></m:ItemShape>'
        '<m:Restriction><t:IsGreaterThan><t:FieldURI FieldURI="item:ReminderDueBy"/><t:FieldURIOrConstant>'
        '<t:Constant Value="2026-03-17T00:00:00Z"/></t:FieldURIOrConstant></t:IsGreaterThan></m:Restriction>'
        '<m:ParentFolderIds><t:DistinguishedFolderId Id="calendar"/></m:ParentFolderIds></m:FindItem>',
    )
    assert answer.status_code == 200 and "<t:Subject>late</t:Subject>" in answer.text
    assert "early" not in answer.text


def test_an_all_day_item_made_from_dates_spans_those_days(sim: SimClient, connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    item = CalendarItem(account=alice, folder=alice.calendar, subject="holiday", is_all_day=True)
    item.start, item.end = EWSDate(2026, 4, 6), EWSDate(2026, 4, 6)  # exchangelib sends midnight to midnight + 1 day
    item.save(send_meeting_invitations="SendToNone")
    [stored] = sim.calendar("alice@contoso.com")
    assert (stored["start"], stored["end"]) == ("2026-04-06T00:00:00Z", "2026-04-07T00:00:00Z")
    fetched = alice.calendar.get(id=item.id)
    assert (fetched.start, fetched.end) == (EWSDate(2026, 4, 6), EWSDate(2026, 4, 6))


def test_graph_subjects_are_cut_too(sim: SimClient, graph: httpx.Client) -> None:
    body = {
        "subject": "y" * 300,
        "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
    }
    assert graph.post("/users/alice@contoso.com/events", json=body).json()["subject"] == "y" * 255

"""GetUserAvailability through the real exchangelib: busy types, time zones, batching, limits."""

from __future__ import annotations

import datetime as dt

import pytest
from exchangelib import EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorMailboxDataArrayTooBig, ErrorMailRecipientNotFound, ErrorTimeIntervalTooBig
from exchangelib.properties import FreeBusyViewOptions, MailboxData, TimeWindow, TimeZone
from exchangelib.services import GetUserAvailability

from ews_sim.testing import SimClient, ews_account

UTC = EWSTimeZone("UTC")
DAY = EWSDateTime(2026, 5, 11, 0, 0, tzinfo=UTC)


def free_busy(account: object, emails: list[str], start: EWSDateTime, end: EWSDateTime) -> list[object]:
    protocol = account.protocol  # type: ignore[attr-defined]
    return list(protocol.get_free_busy_info(accounts=[(e, "Required", False) for e in emails], start=start, end=end))


def test_events_carry_busy_type_and_whole_span(sim: SimClient) -> None:
    sim.seed("bob@contoso.com", subject="crosses start", start="2026-05-10T22:00:00Z", end="2026-05-11T01:00:00Z")
    sim.seed(
        "bob@contoso.com",
        subject="tentative",
        start="2026-05-11T09:00:00Z",
        end="2026-05-11T10:00:00Z",
        freeBusy="Tentative",
    )
    sim.seed(
        "bob@contoso.com", subject="free", start="2026-05-11T11:00:00Z", end="2026-05-11T12:00:00Z", freeBusy="Free"
    )
    sim.seed(
        "bob@contoso.com",
        subject="away",
        start="2026-05-11T13:00:00+02:00",
        end="2026-05-11T15:00:00+02:00",
        freeBusy="OOF",
    )
    sim.seed("bob@contoso.com", subject="outside", start="2026-05-13T09:00:00Z", end="2026-05-13T10:00:00Z")
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    [view] = free_busy(alice, ["bob@contoso.com"], DAY, DAY + dt.timedelta(days=1))
    events = [(e.start, e.end, e.busy_type, e.details.subject) for e in view.calendar_events]
    assert events == [
        (DAY - dt.timedelta(hours=2), DAY + dt.timedelta(hours=1), "Busy", "crosses start"),
        (DAY + dt.timedelta(hours=9), DAY + dt.timedelta(hours=10), "Tentative", "tentative"),
        (DAY + dt.timedelta(hours=11), DAY + dt.timedelta(hours=12), "Free", "free"),
        (DAY + dt.timedelta(hours=11), DAY + dt.timedelta(hours=13), "OOF", "away"),
    ]
    # One digit per 30 minutes: busy 00-01, tentative 09-10, OOF 11-13 (stronger than the free item).
    assert view.merged == "22" + "0" * 16 + "11" + "00" + "3333" + "0" * 22


def test_times_come_back_in_the_requested_zone(sim: SimClient) -> None:
    sim.seed("carol@contoso.com", subject="summer", start="2026-07-01T07:00:00Z", end="2026-07-01T08:00:00Z")
    sim.seed("carol@contoso.com", subject="winter", start="2026-12-01T07:00:00Z", end="2026-12-01T08:00:00Z")
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    for month, local_hour in ((7, 9), (12, 8)):
        zone = EWSTimeZone("Europe/Berlin")
        start = EWSDateTime(2026, month, 1, 0, 0, tzinfo=zone)
        [view] = free_busy(alice, ["carol@contoso.com"], start, start + dt.timedelta(days=1))
        [event] = view.calendar_events
        assert event.start.tzinfo == zone and event.start.hour == local_hour
        assert event.start.astimezone(UTC).hour == 7


def test_unknown_mailbox_fails_alone(sim: SimClient) -> None:
    sim.seed("bob@contoso.com", subject="x", start="2026-05-11T09:00:00Z", end="2026-05-11T10:00:00Z")
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    views = free_busy(
        alice, ["bob@contoso.com", "ghost@contoso.com", "someone@fabrikam.com"], DAY, DAY + dt.timedelta(days=1)
    )
    assert len(views[0].calendar_events) == 1
    assert isinstance(views[1], ErrorMailRecipientNotFound)
    assert views[2].calendar_events is None  # any fabrikam.com address is a mailbox, with nothing booked


@pytest.mark.parametrize(("count", "requests"), [(1, 1), (100, 1), (101, 2)])
def test_batches_of_at_most_100_mailboxes(sim: SimClient, count: int, requests: int) -> None:
    emails = [f"user{n:03d}@fabrikam.com" for n in range(count)]
    sim.seed(emails[-1], subject="last", start="2026-05-11T09:00:00Z", end="2026-05-11T10:00:00Z")
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    since = sim.log()[-1]["seq"] if sim.log() else 0
    views = free_busy(alice, emails, DAY, DAY + dt.timedelta(days=7))
    assert len(views) == count
    assert [len(v.calendar_events or []) for v in views] == [0] * (count - 1) + [1]
    calls = [e for e in sim.log(since) if e["operation"] == "GetUserAvailability"]
    assert len(calls) == requests
    assert sum(len(e["responseCodes"]) for e in calls) == count


def _raw_availability(account: object, emails: list[str], days: int) -> list[object]:
    service = GetUserAvailability(protocol=account.protocol, chunk_size=500)  # type: ignore[attr-defined]
    [definition] = account.protocol.get_timezones(timezones=[UTC], return_full_timezone_data=True)  # type: ignore[attr-defined]
    zone = TimeZone.from_server_timezone(tz_definition=definition, for_year=DAY.year)
    return list(
        service.call(
            tzinfo=UTC,
            mailbox_data=[MailboxData(email=e, attendee_type="Required", exclude_conflicts=False) for e in emails],
            timezone=zone,
            free_busy_view_options=FreeBusyViewOptions(
                time_window=TimeWindow(start=DAY, end=DAY + dt.timedelta(days=days)),
                merged_free_busy_interval=30,
                requested_view="FreeBusy",
            ),
        )
    )


def test_more_than_100_mailboxes_in_one_request_is_refused(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    with pytest.raises(ErrorMailboxDataArrayTooBig):
        _raw_availability(alice, [f"user{n}@fabrikam.com" for n in range(101)], days=1)
    assert len(_raw_availability(alice, [f"user{n}@fabrikam.com" for n in range(100)], days=1)) == 100


def test_window_over_42_days_is_refused(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    with pytest.raises(ErrorTimeIntervalTooBig, match="42 days"):
        _raw_availability(alice, ["bob@contoso.com"], days=43)
    assert len(_raw_availability(alice, ["bob@contoso.com"], days=42)) == 1


def test_cancelled_copies_are_free(sim: SimClient) -> None:
    from exchangelib import Attendee, CalendarItem, Mailbox

    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="m",
        start=DAY + dt.timedelta(hours=9),
        end=DAY + dt.timedelta(hours=10),
        required_attendees=[Attendee(mailbox=Mailbox(email_address="bob@contoso.com"))],
    )
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    sim.respond("bob@contoso.com", "Accept", organizerItemId=item.id)
    [before] = free_busy(alice, ["bob@contoso.com"], DAY, DAY + dt.timedelta(days=1))
    assert [e.busy_type for e in before.calendar_events] == ["Busy"]
    item.delete(send_meeting_cancellations="SendToAllAndSaveCopy")
    [after] = free_busy(alice, ["bob@contoso.com"], DAY, DAY + dt.timedelta(days=1))
    assert [e.busy_type for e in after.calendar_events] == ["Free"]

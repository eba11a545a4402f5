"""Mailbox aliases: any address of a mailbox names it, through EWS (the real exchangelib) and Graph; ResolveNames."""

from __future__ import annotations

import datetime as dt

import httpx
import pytest
import requests
from exchangelib import Attendee, CalendarItem, EWSDateTime, EWSTimeZone, Mailbox
from exchangelib.errors import ErrorImpersonateUserDenied, ErrorNameResolutionNoResults

from ews_sim.config import ConfigError, OrgConfig
from ews_sim.store import Organisation
from ews_sim.testing import GRAPH_TENANT, SimClient, ews_account
from tests.ews_sim.conftest import Connect

UTC = EWSTimeZone("UTC")
START = EWSDateTime(2026, 5, 4, 9, 0, tzinfo=UTC)
BOB, ROBERT, BOBBY = "bob@contoso.com", "robert@contoso.com", "bobby@contoso.com"


@pytest.fixture
def aliased(sim: SimClient) -> SimClient:
    sim.add_mailboxes(aliases={BOB: [ROBERT, BOBBY]})
    return sim


def appointment(account: object, subject: str = "x", **fields: object) -> CalendarItem:
    item = CalendarItem(
        account=account,
        folder=account.calendar,  # type: ignore[attr-defined]
        subject=subject,
        start=START,
        end=START + dt.timedelta(hours=1),
        **fields,
    )
    item.save(send_meeting_invitations="SendToAllAndSaveCopy" if fields else "SendToNone")
    return item


def test_aliases_in_the_configuration() -> None:
    config = OrgConfig.from_dict({"mailboxes": [BOB], "aliases": {BOB: [ROBERT.upper()]}})
    org = Organisation()
    config.apply(org)
    assert org.primary(ROBERT) == BOB and org.is_mailbox("Robert@Contoso.com") and org.addresses(BOB) == [BOB, ROBERT]
    with pytest.raises(ConfigError, match="mailbox of its own"):
        OrgConfig.from_dict({"mailboxes": [BOB, ROBERT], "aliases": {BOB: [ROBERT]}})
    with pytest.raises(ConfigError, match="given twice"):
        OrgConfig.from_dict({"aliases": {BOB: [ROBERT], "carol@contoso.com": [ROBERT]}})
    with pytest.raises(ConfigError, match="list of addresses"):
        OrgConfig.from_dict({"aliases": {BOB: ROBERT}})


def test_aliases_through_the_control_api(aliased: SimClient) -> None:
    listed = aliased._call("GET", "/mailboxes")
    assert listed["aliases"] == {BOB: [BOBBY, ROBERT]}
    clash = requests.post(f"{aliased.url}/_sim/mailboxes", json={"aliases": {"carol@contoso.com": [ROBERT]}}, timeout=5)
    assert clash.status_code == 400 and "already an address of bob@contoso.com" in clash.json()["error"]
    taken = requests.post(f"{aliased.url}/_sim/mailboxes", json={"aliases": {"carol@contoso.com": [BOB]}}, timeout=5)
    assert taken.status_code == 400
    aliased.seed(ROBERT, subject="seeded", start="2026-05-04T09:00:00Z", end="2026-05-04T10:00:00Z")
    assert [i["subject"] for i in aliased.calendar(BOB)] == ["seeded"]


def test_impersonating_an_alias_acts_on_its_mailbox(aliased: SimClient, connect: Connect) -> None:
    robert = connect(ROBERT)
    appointment(robert, "made as robert")
    assert [i["subject"] for i in aliased.calendar(BOB)] == ["made as robert"]
    assert [i.subject for i in connect(BOB).calendar.all()] == ["made as robert"]
    assert {e["mailbox"] for e in aliased.log() if e["mailbox"]} == {BOB}  # logged and matched as the mailbox
    # An account allowed one mailbox may use any of its addresses, and no other mailbox through an alias.
    aliased.add_mailboxes(aliases={"alice@contoso.com": ["ali@contoso.com"]})
    helpdesk = ews_account(aliased.ews_url, "ali@contoso.com", username="helpdesk@contoso.com", password="h3lp")
    assert list(helpdesk.calendar.all()) == []
    with pytest.raises(ErrorImpersonateUserDenied):
        list(ews_account(aliased.ews_url, ROBERT, username="helpdesk@contoso.com", password="h3lp").calendar.all())


def test_an_alias_invited_is_the_mailbox_invited(aliased: SimClient, connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    item = appointment(alice, "meeting", required_attendees=[Attendee(mailbox=Mailbox(email_address=ROBERT))])
    [copy] = aliased.calendar(BOB)
    assert copy["organizer"] == "alice@contoso.com" and copy["myResponse"] == "NoResponseReceived"
    # Exchange resolves the recipient: the organizer's item lists the mailbox by its primary address.
    assert [a.mailbox.email_address for a in alice.calendar.get(id=item.id).required_attendees] == [BOB]
    assert [(m["kind"], m["to"]) for m in aliased.messages()] == [("request", BOB)]
    [bobs] = list(connect(BOBBY).calendar.all())
    bobs.accept()
    answers = {a.mailbox.email_address: a.response_type for a in alice.calendar.get(id=item.id).required_attendees}
    assert answers == {BOB: "Accept"}


def test_availability_of_an_alias_is_its_mailbox(aliased: SimClient, connect: Connect) -> None:
    appointment(connect(BOB), "busy")
    alice = connect("alice@contoso.com")
    found = list(
        alice.protocol.get_free_busy_info(
            accounts=[(ROBERT, "Required", False), (BOB, "Required", False), ("nobody@contoso.com", "Required", False)],
            start=START - dt.timedelta(hours=2),
            end=START + dt.timedelta(hours=4),
        )
    )
    assert [len(f.calendar_events or []) for f in found[:2]] == [1, 1]
    assert "ErrorMailRecipientNotFound" in type(found[2]).__name__


def test_resolve_names_answers_the_primary_address(aliased: SimClient, connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    assert alice.version.build  # exchangelib's account-less services do not guess a version themselves
    [mailbox] = alice.protocol.resolve_names([ROBERT])
    assert (mailbox.email_address, mailbox.routing_type, mailbox.mailbox_type) == (BOB, "SMTP", "Mailbox")
    assert [m.email_address for m in alice.protocol.resolve_names([f"SMTP:{BOB.upper()}"])] == [BOB]
    [(found, contact)] = alice.protocol.resolve_names([BOBBY], return_full_contact_data=True)
    assert found.email_address == BOB
    assert sorted(e.email for e in contact.email_addresses) == [f"SMTP:{BOB}", f"smtp:{BOBBY}", f"smtp:{ROBERT}"]
    [missing] = alice.protocol.resolve_names(["nobody@contoso.com"])
    assert isinstance(missing, ErrorNameResolutionNoResults)
    # A prefix naming several mailboxes: a warning, and every candidate.
    assert sorted(m.email_address for m in alice.protocol.resolve_names(["bo"])) == [BOB]
    assert sorted(m.email_address for m in alice.protocol.resolve_names(["c"])) == ["carol@contoso.com"]
    several = sorted(m.email_address for m in alice.protocol.resolve_names(["a"]))
    assert several == ["alice@contoso.com"]
    aliased.add_mailboxes("anna@contoso.com")
    assert sorted(m.email_address for m in alice.protocol.resolve_names(["a"])) == [
        "alice@contoso.com",
        "anna@contoso.com",
    ]


def test_graph_takes_any_address_of_a_mailbox(aliased: SimClient, graph: httpx.Client) -> None:
    body = {
        "subject": "via alias",
        "start": {"dateTime": "2030-01-07T09:00:00", "timeZone": "UTC"},
        "end": {"dateTime": "2030-01-07T10:00:00", "timeZone": "UTC"},
    }
    assert graph.post(f"/users/{ROBERT}/events", json=body).status_code == 201
    assert [e["subject"] for e in graph.get(f"/users/{BOB}/events").json()["value"]] == ["via alias"]
    assert graph.get(f"/users/{BOBBY}/calendar").json()["owner"]["address"] == BOB
    schedule = graph.post(
        f"/users/{BOB}/calendar/getSchedule",
        json={
            "schedules": [ROBERT, BOB],
            "startTime": {"dateTime": "2030-01-07T00:00:00", "timeZone": "UTC"},
            "endTime": {"dateTime": "2030-01-08T00:00:00", "timeZone": "UTC"},
        },
    ).json()["value"]
    assert [(s["scheduleId"], len(s["scheduleItems"])) for s in schedule] == [(ROBERT, 1), (BOB, 1)]
    # The directory needs a directory permission; then any address finds the user and all its addresses.
    assert graph.get(f"/users/{ROBERT}").status_code == 403
    aliased.add_app("55555555-5555-4555-8555-555555555555", "dir-s3cret", roles=["User.Read.All"], tenant=GRAPH_TENANT)
    with aliased.graph_client(aliased.graph_token("55555555-5555-4555-8555-555555555555", "dir-s3cret")) as directory:
        user = directory.get(f"/users/{ROBERT}").json()
        assert (user["mail"], user["userPrincipalName"]) == (BOB, BOB)
        assert user["proxyAddresses"] == [f"SMTP:{BOB}", f"smtp:{BOBBY}", f"smtp:{ROBERT}"]
        missing = directory.get("/users/nobody@contoso.com")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "Request_ResourceNotFound"

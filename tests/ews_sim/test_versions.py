"""Server versions: an exchangelib client that pins none guesses it with ConvertId, as against Exchange."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import requests
from exchangelib import CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorInvalidIdMalformed
from exchangelib.properties import ENTRY_ID, EWS_ID, HEX_ENTRY_ID, AlternateId
from exchangelib.version import Build

from ews_sim.app import Running, start_in_thread
from ews_sim.config import OrgConfig
from ews_sim.schema import EwsSchema
from ews_sim.server import Simulator
from ews_sim.testing import SERVICE_ACCOUNT, SERVICE_PASSWORD, TEST_ORG, SimClient, ews_account
from tests.ews_sim.conftest import Connect

UTC = EWSTimeZone("UTC")


def test_a_client_without_a_version_guesses_it_and_works(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com", build=None)
    start = EWSDateTime(2026, 3, 16, 10, tzinfo=UTC)
    item = CalendarItem(
        account=alice, folder=alice.calendar, subject="guessed", start=start, end=start + dt.timedelta(hours=1)
    )
    item.save(send_meeting_invitations="SendToNone")
    assert (alice.version.build, alice.version.api_version) == (Build(15, 1, 2507, 6), "Exchange2016")
    first = sim.log()[0]
    assert (first["operation"], first["responseCode"], first["httpStatus"]) == (
        "ConvertId",
        "ErrorInvalidIdMalformed",
        200,
    )
    assert [i["subject"] for i in sim.calendar("alice@contoso.com")] == ["guessed"]


def test_convert_id_between_formats(connect: Connect) -> None:
    alice = connect("alice@contoso.com")
    item = CalendarItem(
        account=alice, folder=alice.calendar, subject="x", start=EWSDateTime(2026, 3, 16, 10, tzinfo=UTC)
    )
    item.end = item.start + dt.timedelta(hours=1)
    item.save(send_meeting_invitations="SendToNone")
    [hexed] = alice.protocol.convert_ids(
        [AlternateId(id=item.id, format=EWS_ID, mailbox="alice@contoso.com")], HEX_ENTRY_ID
    )
    assert hexed.format == HEX_ENTRY_ID and all(c in "0123456789ABCDEF" for c in hexed.id)
    [entry] = alice.protocol.convert_ids([hexed], ENTRY_ID)
    [back] = alice.protocol.convert_ids([entry], EWS_ID)
    assert back.id == item.id and back.mailbox == "alice@contoso.com"
    [dummy] = alice.protocol.convert_ids([AlternateId(id="DUMMY", format=EWS_ID, mailbox="DUMMY")], ENTRY_ID)
    assert isinstance(dummy, ErrorInvalidIdMalformed)


def soap(running_url: str, version: str | None) -> requests.Response:
    header = f'<t:RequestServerVersion Version="{version}"/>' if version else ""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        f'<s:Header>{header}</s:Header><s:Body><m:GetServerTimeZones ReturnFullTimeZoneData="false">'
        "<m:Ids><t:Id>UTC</t:Id></m:Ids></m:GetServerTimeZones></s:Body></s:Envelope>"
    )
    return requests.post(
        f"{running_url}/EWS/Exchange.asmx", data=body.encode(), auth=(SERVICE_ACCOUNT, SERVICE_PASSWORD), timeout=10
    )


@pytest.mark.parametrize(
    ("version", "served"),
    [
        ("Exchange2016", True),
        ("Exchange2007_SP1", True),
        ("V2016_10_10", True),
        (None, True),  # no header: served as Exchange2007
        ("Exchange2015_SP1", False),  # a product name, not a schema version
        ("Exchange2019", False),
        ("Exchange2007_SP2", False),
    ],
)
def test_versions_the_server_serves(sim: SimClient, version: str | None, served: bool) -> None:
    answer = soap(sim.url, version)
    if served:
        assert answer.status_code == 200 and "NoError" in answer.text
    else:
        assert answer.status_code == 500
        assert "ErrorInvalidServerVersion" in answer.text and "The specified server version is invalid." in answer.text


@pytest.fixture(scope="module")
def exchange_2013(ews_schema: EwsSchema | None) -> Iterator[Running]:
    running = start_in_thread(Simulator(OrgConfig.from_dict(TEST_ORG), build="15.0.1497.2", schema=ews_schema))
    yield running
    running.stop()


def test_an_older_server_refuses_newer_versions_and_exchangelib_finds_its_own(exchange_2013: Running) -> None:
    assert soap(exchange_2013.url, "Exchange2016").status_code == 500
    assert soap(exchange_2013.url, "Exchange2013_SP1").status_code == 200
    alice = ews_account(exchange_2013.ews_url, "alice@contoso.com", build=None)
    start = EWSDateTime(2026, 3, 16, 10, tzinfo=UTC)
    item = CalendarItem(
        account=alice, folder=alice.calendar, subject="old", start=start, end=start + dt.timedelta(hours=1)
    )
    item.save(send_meeting_invitations="SendToNone")
    assert alice.version.build == Build(15, 0, 1497, 2)
    assert alice.version.api_version == "Exchange2013_SP1"
    assert [i.subject for i in alice.calendar.all()] == ["old"]
    assert exchange_2013.sim.schema_errors == []

"""The simulator's faithfulness, checked against Microsoft's published EWS schema.

Every response of a scenario touching every operation (and its error forms) is captured to disk
and validated here, independently of the server's own strict-mode check; invalid requests are
refused with ErrorSchemaValidation as Exchange refuses them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from exchangelib import Attendee, CalendarItem, EWSDateTime, EWSTimeZone, Mailbox
from exchangelib.errors import ErrorItemNotFound, ErrorQuotaExceeded, ErrorSchemaValidation
from exchangelib.services import GetFolder
from lxml import etree

from ews_sim.app import Running, start_in_thread
from ews_sim.config import OrgConfig
from ews_sim.schema import EwsSchema, default_schema_dir
from ews_sim.server import Simulator
from ews_sim.testing import SERVICE_ACCOUNT, SERVICE_PASSWORD, TEST_ORG, SimClient, ews_account
from ews_sim.xmlutil import SOAP

SCHEMA_DIR = default_schema_dir()
pytestmark = pytest.mark.skipif(
    SCHEMA_DIR is None, reason="EWS schema folder (../shared/ews-schema or DOWNSYNC_EWS_SCHEMA_DIR) is absent"
)
UTC = EWSTimeZone("UTC")
START = EWSDateTime(2026, 6, 1, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def schema() -> EwsSchema:
    assert SCHEMA_DIR is not None
    return EwsSchema(SCHEMA_DIR)


@pytest.fixture
def capturing(tmp_path: Path, schema: EwsSchema) -> Iterator[tuple[SimClient, Path]]:
    running: Running = start_in_thread(Simulator(OrgConfig.from_dict(TEST_ORG), schema=schema, capture_dir=tmp_path))
    try:
        yield SimClient(running), tmp_path
    finally:
        running.stop()


def _every_operation(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    item = CalendarItem(
        account=alice,
        folder=alice.calendar,
        subject="s",
        body="b",
        location="l",
        start=START,
        end=START + dt.timedelta(hours=1),
        required_attendees=[Attendee(mailbox=Mailbox(email_address="bob@contoso.com"))],
        optional_attendees=[Attendee(mailbox=Mailbox(email_address="ext@example.org"))],
    )
    item.save(send_meeting_invitations="SendToAllAndSaveCopy")
    sim.respond("bob@contoso.com", "Accept", organizerItemId=item.id)
    fetched = alice.calendar.get(id=item.id)  # every field exchangelib knows, attendees with answers
    list(alice.calendar.filter(subject="s").order_by("-start"))
    list(alice.calendar.view(start=START, end=START + dt.timedelta(days=1)))
    fetched.subject = "t"
    fetched.save(update_fields=["subject"], send_meeting_invitations="SendToAllAndSaveCopy")
    list(alice.fetch(ids=[(item.id, None), ("AAMkAGI2missing", None)]))  # one ErrorItemNotFound message
    list(alice.protocol.get_timezones(return_full_timezone_data=True))
    list(alice.protocol.get_timezones(return_full_timezone_data=False))
    list(
        alice.protocol.get_free_busy_info(
            accounts=[("bob@contoso.com", "Required", False), ("nobody@contoso.com", "Optional", False)],
            start=START - dt.timedelta(hours=1),
            end=START + dt.timedelta(days=2),
        )
    )
    fetched.delete(send_meeting_cancellations="SendToAllAndSaveCopy")
    with pytest.raises(ErrorItemNotFound):
        alice.calendar.get(id=item.id)
    sim.fault(operation="CreateItem", responseCode="ErrorQuotaExceeded", count=1)
    with pytest.raises(ErrorQuotaExceeded):
        CalendarItem(
            account=alice, folder=alice.calendar, subject="q", start=START, end=START + dt.timedelta(hours=1)
        ).save(send_meeting_invitations="SendToNone")


def test_every_response_validates(capturing: tuple[SimClient, Path], schema: EwsSchema) -> None:
    sim, folder = capturing
    _every_operation(sim)
    captured = sorted(folder.glob("*.response.xml"))
    operations = {p.name.split("-", 1)[1].split(".")[0] for p in captured}
    assert operations >= {
        "GetFolder",
        "CreateItem",
        "GetItem",
        "FindItem",
        "UpdateItem",
        "DeleteItem",
        "GetServerTimeZones",
        "GetUserAvailability",
    }
    for path in captured:
        raw = path.read_bytes()
        assert raw.startswith(b'<?xml version="1.0" encoding="utf-8"?>'), path.name
        root = etree.fromstring(raw)
        assert (
            root.find(
                f"{{{SOAP}}}Header/{{http://schemas.microsoft.com/exchange/services/2006/types}}ServerVersionInfo"
            )
            is not None
        ), path.name
        assert schema.validate_envelope(root) is None, f"{path.name}: {schema.validate_envelope(root)}"
    # The server's own strict-mode check agrees.
    assert sim.schema_errors() == []


def test_the_validator_catches_a_broken_response(schema: EwsSchema) -> None:
    broken = (
        f'<s:Envelope xmlns:s="{SOAP}"><s:Body><m:GetItemResponse '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><m:ResponseMessages>'
        '<m:GetItemResponseMessage ResponseClass="Fine"><m:ResponseCode>NoError</m:ResponseCode><m:Items/>'
        "</m:GetItemResponseMessage>"
        "</m:ResponseMessages></m:GetItemResponse></s:Body></s:Envelope>"
    )
    problem = schema.validate_envelope(etree.fromstring(broken))
    assert problem is not None and "ResponseClass" in problem.message


def test_invalid_request_is_refused_and_changes_nothing(sim: SimClient) -> None:
    envelope = (
        f'<?xml version="1.0" encoding="utf-8"?>\n<s:Envelope xmlns:s="{SOAP}" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">\n'
        '<s:Header><t:RequestServerVersion Version="Exchange2016"/><t:ExchangeImpersonation><t:ConnectingSID>'
        "<t:PrimarySmtpAddress>alice@contoso.com</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
        '</s:Header>\n<s:Body><m:CreateItem SendMeetingInvitations="SendToNone"><m:Items><t:CalendarItem>'
        "<t:Start>2026-06-01T09:00:00Z</t:Start><t:Subject>out of order</t:Subject><t:End>2026-06-01T10:00:00Z</t:End>"
        "</t:CalendarItem></m:Items></m:CreateItem></s:Body></s:Envelope>"
    )
    reply = requests.post(sim.ews_url, data=envelope.encode(), auth=(SERVICE_ACCOUNT, SERVICE_PASSWORD), timeout=10)
    assert reply.status_code == 500
    fault = etree.fromstring(reply.content)
    ns = {
        "e": "http://schemas.microsoft.com/exchange/services/2006/errors",
        "t": "http://schemas.microsoft.com/exchange/services/2006/types",
    }
    assert fault.findtext(".//e:ResponseCode", namespaces=ns) == "ErrorSchemaValidation"
    assert fault.findtext(".//t:LineNumber", namespaces=ns) == "4"
    assert "Subject" in fault.findtext(".//t:Violation", namespaces=ns)
    assert sim.calendar("alice@contoso.com") == []


def test_exchangelib_sees_schema_validation_errors(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, "alice@contoso.com")
    service = GetFolder(account=alice)
    bogus = etree.Element("{http://schemas.microsoft.com/exchange/services/2006/messages}GetFolder")
    etree.SubElement(bogus, "{http://schemas.microsoft.com/exchange/services/2006/messages}NoSuchChild")
    with pytest.raises(ErrorSchemaValidation, match="NoSuchChild"):
        list(service._get_elements(payload=bogus))

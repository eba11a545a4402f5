"""Every fault the simulator injects, as the real, unmodified exchangelib sees it under FailFast.

Each case names the exception real Exchange's behaviour produces in exchangelib 5.6.0, following
services/common.py (``_get_elements``, ``_raise_soap_errors``, ``_get_element_container``),
protocol.py (``RetryPolicy.raise_response_errors``) and util.py (``post_ratelimited``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
from exchangelib import UTC, Account, CalendarItem, EWSDateTime
from exchangelib.errors import (
    ErrorImpersonateUserDenied,
    ErrorInternalServerTransientError,
    ErrorMailRecipientNotFound,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    ErrorTimeoutExpired,
    UnauthorizedError,
)

from ews_sim.testing import SERVICE_ACCOUNT, SERVICE_PASSWORD, SimClient, ews_account

ALICE = "alice@contoso.com"
BOB = "bob@contoso.com"
START = EWSDateTime(2030, 1, 7, 9, 0, tzinfo=UTC)

# A GetFolder for bob's calendar as exchangelib 5.6.0 sends it (captured with Simulator(capture_dir=...)).
RAW_GET_FOLDER = f"""<?xml version='1.0' encoding='utf-8'?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"
 xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header>
<t:RequestServerVersion Version="Exchange2016"/>
<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{BOB}</t:PrimarySmtpAddress></t:ConnectingSID>
</t:ExchangeImpersonation></s:Header><s:Body><m:GetFolder><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>
</m:FolderShape><m:FolderIds><t:DistinguishedFolderId Id="calendar"/></m:FolderIds></m:GetFolder></s:Body>
</s:Envelope>"""


def appointment(account: Account, subject: str = "Fault test") -> CalendarItem:
    return CalendarItem(
        account=account, folder=account.calendar, subject=subject, start=START, end=START + dt.timedelta(hours=1)
    )


def get_folder_once(account: Account) -> Callable[[], Any]:
    """One GetFolder per call: the calendar folder is resolved first, then only refreshed."""
    calendar = account.calendar
    return calendar.refresh


def last_entry(sim: SimClient, operation: str | None = None) -> dict[str, Any]:
    entries = [e for e in sim.log() if operation is None or e["operation"] == operation]
    assert entries, f"no {operation or 'EWS'} request in the simulator's log"
    return entries[-1]


def wait_for_log(sim: SimClient, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The server logs a request when it has finished with it, which may be after the client gave up."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [e for e in sim.log() if predicate(e)]
        if found:
            return found[-1]
        time.sleep(0.02)
    raise AssertionError(f"no matching log entry in {sim.log()}")


# --- Throttling: ErrorServerBusy -------------------------------------------------------------------


def test_server_busy_carries_back_off(sim: SimClient) -> None:
    sim.fault(responseCode="ErrorServerBusy", backOffMilliseconds=1500)
    with pytest.raises(ErrorServerBusy) as caught:
        ews_account(sim.ews_url, ALICE).calendar  # noqa: B018 - the property is the request
    assert caught.value.back_off == 1.5
    entry = last_entry(sim)
    assert (entry["operation"], entry["responseCode"], entry["httpStatus"]) == ("GetFolder", "ErrorServerBusy", 500)


def test_server_busy_without_back_off_gets_exchangelibs_own_wait(sim: SimClient) -> None:
    sim.fault(responseCode="ErrorServerBusy")
    account = ews_account(sim.ews_url, ALICE)
    with pytest.raises(ErrorServerBusy) as caught:
        account.calendar  # noqa: B018
    # No BackOffMilliseconds in MessageXml: _get_elements fills in its first retry wait.
    assert caught.value.back_off == account.protocol.RETRY_WAIT


# --- Which requests a rule hits ---------------------------------------------------------------------


def test_count_fails_exactly_that_many_requests(sim: SimClient) -> None:
    refresh = get_folder_once(ews_account(sim.ews_url, ALICE))
    sim.fault(operation="GetFolder", responseCode="ErrorServerBusy", count=2)
    for _ in range(2):
        with pytest.raises(ErrorServerBusy):
            refresh()
    refresh()
    refresh()
    assert [e["responseCode"] for e in sim.log()[-4:]] == ["ErrorServerBusy", "ErrorServerBusy", "NoError", "NoError"]
    assert sim.http.get(f"{sim.url}/_sim/faults", timeout=5).json() == []


def _failures(refresh: Callable[[], Any], requests_made: int) -> list[bool]:
    outcome = []
    for _ in range(requests_made):
        try:
            refresh()
        except ErrorServerBusy:
            outcome.append(True)
        else:
            outcome.append(False)
    return outcome


def test_probability_fails_about_that_share_and_is_repeatable_with_a_seed(sim: SimClient) -> None:
    refresh = get_folder_once(ews_account(sim.ews_url, ALICE))
    sim.fault(responseCode="ErrorServerBusy", probability=0.4, seed=1234)
    first = _failures(refresh, 40)
    # Binomial(40, 0.4): mean 16, sd about 3.1; the seed makes this deterministic anyway.
    assert 6 <= sum(first) <= 26
    sim.clear_faults()
    sim.fault(responseCode="ErrorServerBusy", probability=0.4, seed=1234)
    assert _failures(refresh, 40) == first


@pytest.mark.parametrize(("probability", "expected"), [(0, False), (1, True)])
def test_probability_extremes(sim: SimClient, probability: float, expected: bool) -> None:
    refresh = get_folder_once(ews_account(sim.ews_url, ALICE))
    sim.fault(responseCode="ErrorServerBusy", probability=probability, seed=5)
    assert _failures(refresh, 10) == [expected] * 10
    assert len(sim.http.get(f"{sim.url}/_sim/faults", timeout=5).json()) == 1


def test_operation_scoping(sim: SimClient) -> None:
    sim.fault(operation="CreateItem", responseCode="ErrorServerBusy")
    alice = ews_account(sim.ews_url, ALICE)
    assert alice.calendar.total_count == 0  # GetFolder is not touched
    with pytest.raises(ErrorServerBusy):
        appointment(alice).save(send_meeting_invitations="SendToNone")
    assert last_entry(sim)["operation"] == "CreateItem"


def test_mailbox_scoping(sim: SimClient) -> None:
    sim.fault(mailbox="Bob@Contoso.com", responseCode="ErrorServerBusy")
    assert ews_account(sim.ews_url, ALICE).calendar.total_count == 0
    with pytest.raises(ErrorServerBusy):
        ews_account(sim.ews_url, BOB).calendar  # noqa: B018
    codes = {(e["mailbox"], e["responseCode"]) for e in sim.log()}
    assert codes == {(ALICE, "NoError"), (BOB, "ErrorServerBusy")}


# --- Faults come before side effects; per-message codes --------------------------------------------


def test_failed_create_item_leaves_no_item(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, ALICE)
    sim.fault(operation="CreateItem", responseCode="ErrorServerBusy", count=1)
    with pytest.raises(ErrorServerBusy):
        appointment(alice, "First try").save(send_meeting_invitations="SendToNone")
    assert sim.calendar(ALICE) == []
    appointment(alice, "Second try").save(send_meeting_invitations="SendToNone")
    assert [i["subject"] for i in sim.calendar(ALICE)] == ["Second try"]


def test_per_message_code_arrives_in_the_response_message(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, ALICE)
    sim.fault(operation="CreateItem", responseCode="ErrorMailRecipientNotFound")
    with pytest.raises(ErrorMailRecipientNotFound):
        appointment(alice).save(send_meeting_invitations="SendToNone")
    entry = last_entry(sim, "CreateItem")
    # Not a SOAP fault: HTTP 200 with ResponseClass="Error" in CreateItemResponseMessage.
    assert (entry["httpStatus"], entry["responseCodes"]) == (200, ["ErrorMailRecipientNotFound"])
    assert sim.calendar(ALICE) == []


# --- HTTP-level failures -------------------------------------------------------------------------------


def test_http_503_is_server_busy_reraised_from_transient_error(sim: SimClient) -> None:
    sim.fault(httpStatus=503)
    with pytest.raises(ErrorServerBusy) as caught:
        ews_account(sim.ews_url, ALICE).calendar  # noqa: B018
    assert isinstance(caught.value.__context__, ErrorInternalServerTransientError)
    assert "HTTP 503" in str(caught.value)
    entry = last_entry(sim)
    assert (entry["httpStatus"], entry["responseCode"]) == (503, "HTTP503")


def test_http_500_iis_error_page_is_server_busy(sim: SimClient) -> None:
    sim.fault(httpStatus=500)
    with pytest.raises(ErrorServerBusy) as caught:
        ews_account(sim.ews_url, ALICE).calendar  # noqa: B018
    assert isinstance(caught.value.__context__, ErrorInternalServerTransientError)
    assert "Server Error in 'EWS' Application" in str(caught.value)
    entry = last_entry(sim)
    assert (entry["httpStatus"], entry["responseCode"]) == (500, "HTTP500")
    # The deliberate non-SOAP page must not count as a schema violation of the simulator.
    assert sim.schema_errors() == []


def test_http_401_is_unauthorized_under_fail_fast(sim: SimClient) -> None:
    sim.fault(httpStatus=401, count=1)
    with pytest.raises(UnauthorizedError):
        ews_account(sim.ews_url, ALICE).calendar  # noqa: B018
    assert last_entry(sim)["httpStatus"] == 401
    assert ews_account(sim.ews_url, ALICE).calendar.total_count == 0


# --- Latency, hangs and dropped connections --------------------------------------------------------


def test_latency_slows_but_succeeds(sim: SimClient) -> None:
    refresh = get_folder_once(ews_account(sim.ews_url, ALICE))
    sim.fault(operation="GetFolder", latencyMs=300)
    started = time.perf_counter()
    refresh()
    assert time.perf_counter() - started >= 0.3
    entry = last_entry(sim)
    assert entry["responseCode"] == "NoError"
    assert entry["durationMs"] >= 300


def test_jitter_is_accepted(sim: SimClient) -> None:
    refresh = get_folder_once(ews_account(sim.ews_url, ALICE))
    rule = sim.fault(latencyMs=100, jitterMs=50)
    assert (rule["latencyMs"], rule["jitterMs"]) == (100, 50)
    started = time.perf_counter()
    refresh()
    assert time.perf_counter() - started >= 0.05
    assert last_entry(sim)["durationMs"] >= 50


def test_hang_times_out_the_client(sim: SimClient) -> None:
    account = ews_account(sim.ews_url, ALICE)
    refresh = get_folder_once(account)
    sim.fault(hang=True)
    # Protocol objects are cached per endpoint and credentials: undo the instance attribute for later tests.
    account.protocol.TIMEOUT = 0.5
    try:
        started = time.perf_counter()
        with pytest.raises(ErrorTimeoutExpired) as caught:
            refresh()
        assert time.perf_counter() - started >= 0.5
    finally:
        del account.protocol.TIMEOUT
    # post_ratelimited turns the read timeout into ErrorTimeoutExpired; pool size 1 means no ErrorServerBusy.
    assert isinstance(caught.value.__context__, requests.exceptions.ReadTimeout)
    entry = wait_for_log(sim, lambda e: e["responseCode"] == "Hang")
    assert (entry["operation"], entry["mailbox"], entry["httpStatus"]) == ("GetFolder", ALICE, 0)
    assert entry["durationMs"] >= 500
    sim.clear_faults()
    refresh()


def test_drop_closes_the_connection_without_an_answer(sim: SimClient) -> None:
    refresh = get_folder_once(ews_account(sim.ews_url, ALICE))
    sim.fault(drop=True, count=1)
    with pytest.raises(ErrorTimeoutExpired) as caught:
        refresh()
    assert isinstance(caught.value.__context__, requests.exceptions.ConnectionError)
    entry = last_entry(sim)
    assert (entry["responseCode"], entry["httpStatus"]) == ("Dropped", 0)
    # The server keeps serving, on a new connection.
    refresh()
    assert ews_account(sim.ews_url, BOB).calendar.total_count == 0
    assert last_entry(sim)["responseCode"] == "NoError"


# --- Identity ---------------------------------------------------------------------------------------


def test_impersonating_an_address_without_mailbox(sim: SimClient) -> None:
    with pytest.raises(ErrorNonExistentMailbox):
        ews_account(sim.ews_url, "nobody@contoso.com").calendar  # noqa: B018
    entry = last_entry(sim)
    assert (entry["mailbox"], entry["responseCode"], entry["httpStatus"]) == (
        "nobody@contoso.com",
        "ErrorNonExistentMailbox",
        500,
    )


def test_impersonation_outside_the_accounts_scope_is_denied(sim: SimClient) -> None:
    with pytest.raises(ErrorImpersonateUserDenied):
        ews_account(sim.ews_url, BOB, username="helpdesk@contoso.com", password="h3lp").calendar  # noqa: B018
    entry = last_entry(sim)
    assert (entry["account"], entry["responseCode"], entry["httpStatus"]) == (
        "helpdesk@contoso.com",
        "ErrorImpersonateUserDenied",
        500,
    )
    assert ews_account(sim.ews_url, ALICE, username="helpdesk@contoso.com", password="h3lp").calendar.total_count == 0


def test_wrong_password_is_http_401(sim: SimClient) -> None:
    with pytest.raises(UnauthorizedError):
        ews_account(sim.ews_url, ALICE, password="not-the-password").calendar  # noqa: B018
    raw = requests.post(sim.ews_url, data=RAW_GET_FOLDER, auth=(SERVICE_ACCOUNT, "wrong"), timeout=5)
    assert raw.status_code == 401
    assert raw.headers["WWW-Authenticate"].startswith("Basic")


# --- Concurrency limit --------------------------------------------------------------------------------


def test_concurrency_limit_is_per_service_account(sim: SimClient) -> None:
    sim.limits(1)
    sim.fault(operation="GetFolder", mailbox=BOB, latencyMs=800)
    held: dict[str, requests.Response] = {}

    def hold() -> None:
        held["response"] = requests.post(
            sim.ews_url,
            data=RAW_GET_FOLDER.encode(),
            headers={"Content-Type": "text/xml; charset=utf-8"},
            auth=(SERVICE_ACCOUNT, SERVICE_PASSWORD),
            timeout=10,
        )

    inflight = sim.running.sim.inflight
    thread = threading.Thread(target=hold)
    thread.start()
    try:
        deadline = time.monotonic() + 5
        while inflight[SERVICE_ACCOUNT] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert inflight[SERVICE_ACCOUNT] == 1, "bob's request never reached the simulator"
        with pytest.raises(ErrorServerBusy):
            ews_account(sim.ews_url, ALICE).calendar  # noqa: B018
        # The limit is charged per service account: helpdesk still gets through while svc is at its limit.
        helpdesk = ews_account(sim.ews_url, ALICE, username="helpdesk@contoso.com", password="h3lp")
        assert helpdesk.calendar.total_count == 0
        assert inflight[SERVICE_ACCOUNT] == 1, "bob's request finished too early for the test to mean anything"
    finally:
        thread.join(timeout=10)
    assert held["response"].status_code == 200
    assert "<m:ResponseCode>NoError</m:ResponseCode>" in held["response"].text
    assert ews_account(sim.ews_url, ALICE).calendar.total_count == 0
    refused = [e for e in sim.log() if e["responseCode"] == "ErrorServerBusy"]
    assert [(e["account"], e["mailbox"]) for e in refused] == [(SERVICE_ACCOUNT, ALICE)]


# --- The request log ----------------------------------------------------------------------------------


def test_log_records_operation_mailbox_code_and_duration(sim: SimClient) -> None:
    alice = ews_account(sim.ews_url, ALICE)
    assert alice.calendar.total_count == 0
    since = last_entry(sim)["seq"]
    sim.fault(operation="CreateItem", responseCode="ErrorServerBusy", latencyMs=120, count=1)
    with pytest.raises(ErrorServerBusy):
        appointment(alice).save(send_meeting_invitations="SendToNone")
    appointment(alice).save(send_meeting_invitations="SendToNone")
    response = sim.http.get(f"{sim.url}/_sim/log", params={"since": since}, timeout=5)
    assert response.status_code == 200
    entries = response.json()
    assert [(e["operation"], e["mailbox"], e["account"], e["responseCode"], e["httpStatus"]) for e in entries] == [
        ("CreateItem", ALICE, SERVICE_ACCOUNT, "ErrorServerBusy", 500),
        ("CreateItem", ALICE, SERVICE_ACCOUNT, "NoError", 200),
    ]
    assert entries[0]["durationMs"] >= 120
    assert entries[0]["seq"] < entries[1]["seq"]
    assert all(e["seq"] > since for e in entries)
    assert sim.http.get(f"{sim.url}/_sim/log", params={"since": "x"}, timeout=5).status_code == 400

"""The simulator's control API under /_sim/, its organisation configuration and the ``downsync ews-sim`` command."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from exchangelib import UTC, CalendarItem, EWSDateTime
from exchangelib.errors import ErrorImpersonateUserDenied, ErrorNonExistentMailbox

from downsync.cli import main
from ews_sim import app as sim_app
from ews_sim.app import start_in_thread
from ews_sim.config import DEMO_PASSWORD, ConfigError, OrgConfig
from ews_sim.server import Simulator
from ews_sim.store import Organisation
from ews_sim.testing import SimClient, ews_account

ALICE = "alice@contoso.com"


def post(sim: SimClient, path: str, body: Any = None, raw: str | None = None) -> requests.Response:
    if raw is not None:
        return sim.http.post(f"{sim.url}/_sim{path}", data=raw, headers={"Content-Type": "application/json"}, timeout=5)
    return sim.http.post(f"{sim.url}/_sim{path}", json=body, timeout=5)


def get(sim: SimClient, path: str) -> requests.Response:
    return sim.http.get(f"{sim.url}/_sim{path}", timeout=5)


# --- /_sim/faults --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"responseCode": "ErrorServerBusy", "httpStatus": 503}, "one effect"),
        ({"hang": True, "drop": True}, "one effect"),
        ({"responseCode": "ErrorServerBusy", "colour": "red"}, "unknown fields: colour"),
        ({"responseCode": "ErrorServerBusy", "probability": 2}, "probability must be a number from 0 to 1"),
        ({"httpStatus": 418}, "httpStatus must be one of"),
        ({"responseCode": "ErrorServerBusy", "count": 2, "probability": 0.5}, "count and probability"),
        ({"responseCode": "ErrorServerBusy", "count": 0}, "count must be an integer"),
        ({"responseCode": "ServerBusy"}, "responseCode must be an EWS error code"),
        ({"latencyMs": -5}, "latencyMs must be an integer"),
        ({"drop": "false"}, "drop must be true or false"),
        ({"operation": "GetFolder"}, "needs an effect"),
        (["ErrorServerBusy"], "a fault rule is a JSON object"),
    ],
)
def test_bad_fault_rules_are_refused_with_the_problem_named(sim: SimClient, rule: Any, problem: str) -> None:
    response = post(sim, "/faults", rule)
    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert get(sim, "/faults").json() == []


def test_fault_body_that_is_not_json(sim: SimClient) -> None:
    response = post(sim, "/faults", raw="{responseCode: ErrorServerBusy")
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]


def test_faults_are_listed_and_cleared(sim: SimClient) -> None:
    first = sim.fault(operation="CreateItem", mailbox="Bob@Contoso.com", responseCode="ErrorServerBusy", count=3)
    second = sim.fault(latencyMs=50, jitterMs=10, probability=0.5, seed=9)
    assert first["id"] != second["id"]
    listed = get(sim, "/faults").json()
    assert listed == [
        {
            "id": first["id"],
            "operation": "CreateItem",
            "mailbox": "bob@contoso.com",
            "count": 3,
            "responseCode": "ErrorServerBusy",
        },
        {"id": second["id"], "probability": 0.5, "seed": 9, "latencyMs": 50, "jitterMs": 10},
    ]
    response = sim.http.delete(f"{sim.url}/_sim/faults", timeout=5)
    assert response.status_code == 200
    assert get(sim, "/faults").json() == []


# --- /_sim/mailboxes and /_sim/accounts -----------------------------------------------------------------


def test_added_mailboxes_can_be_impersonated(sim: SimClient) -> None:
    with pytest.raises(ErrorNonExistentMailbox):
        ews_account(sim.ews_url, "erin@contoso.com").calendar  # noqa: B018 - the property is the request
    response = post(sim, "/mailboxes", {"emails": ["Erin@Contoso.com", "frank@contoso.com"]})
    assert response.status_code == 200
    listing = get(sim, "/mailboxes").json()
    assert {"erin@contoso.com", "frank@contoso.com", ALICE} <= set(listing["mailboxes"])
    assert listing["domains"] == ["fabrikam.com"]
    assert ews_account(sim.ews_url, "erin@contoso.com").calendar.total_count == 0


@pytest.mark.parametrize("body", [{"emails": "erin@contoso.com"}, {"emails": ["erin"]}, {"emails": [7]}, {}, []])
def test_bad_mailbox_bodies_are_refused(sim: SimClient, body: Any) -> None:
    before = get(sim, "/mailboxes").json()
    response = post(sim, "/mailboxes", body)
    assert response.status_code == 400
    assert "emails" in response.json()["error"]
    assert get(sim, "/mailboxes").json() == before


def test_mailbox_body_that_is_not_json(sim: SimClient) -> None:
    response = post(sim, "/mailboxes", raw="emails=erin@contoso.com")
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]


def test_added_service_account_is_usable_by_exchangelib(sim: SimClient) -> None:
    response = post(
        sim, "/accounts", {"username": "sync@contoso.com", "password": "pw", "impersonate": ["Bob@contoso.com"]}
    )
    assert response.status_code == 201
    assert (
        ews_account(sim.ews_url, "bob@contoso.com", username="sync@contoso.com", password="pw").calendar.total_count
        == 0
    )
    with pytest.raises(ErrorImpersonateUserDenied):
        ews_account(sim.ews_url, ALICE, username="sync@contoso.com", password="pw").calendar  # noqa: B018
    assert (
        post(sim, "/accounts", {"username": "all@contoso.com", "password": "pw", "impersonate": "*"}).status_code == 201
    )
    assert (
        ews_account(sim.ews_url, "x@fabrikam.com", username="all@contoso.com", password="pw").calendar.total_count == 0
    )


@pytest.mark.parametrize(
    "body",
    [
        {"username": "sync@contoso.com"},
        {"username": "sync@contoso.com", "password": 5},
        {"username": "sync@contoso.com", "password": "pw", "impersonate": [1]},
        {"username": "sync@contoso.com", "password": "pw", "impersonate": "bob@contoso.com"},
    ],
)
def test_bad_account_bodies_are_refused(sim: SimClient, body: Any) -> None:
    response = post(sim, "/accounts", body)
    assert response.status_code == 400
    assert "error" in response.json()


# --- /_sim/mailboxes/{email}/calendar --------------------------------------------------------------------


def test_seeded_item_is_visible_to_control_api_and_exchangelib(sim: SimClient) -> None:
    created = sim.seed(
        ALICE,
        subject="Seeded",
        start="2030-03-04T11:00:00+02:00",
        end="2030-03-04T12:30:00+02:00",
        location="Room 1",
        freeBusy="Tentative",
    )
    assert (created["start"], created["end"]) == ("2030-03-04T09:00:00Z", "2030-03-04T10:30:00Z")
    [listed] = sim.calendar(ALICE)
    assert listed["itemId"] == created["itemId"]
    assert (listed["subject"], listed["location"], listed["freeBusy"]) == ("Seeded", "Room 1", "Tentative")
    [item] = list(ews_account(sim.ews_url, ALICE).calendar.all())
    assert item.subject == "Seeded"
    assert item.start == EWSDateTime(2030, 3, 4, 9, 0, tzinfo=UTC)
    assert item.end == EWSDateTime(2030, 3, 4, 10, 30, tzinfo=UTC)
    assert item.legacy_free_busy_status == "Tentative"
    assert sim.calendar("bob@contoso.com") == []


@pytest.mark.parametrize(
    ("seed", "problem"),
    [
        ({"start": "2030-03-04T10:00:00Z", "end": "2030-03-04T09:00:00Z"}, "end must not be before start"),
        ({"start": "2030-03-04T09:00:00Z", "end": "2030-03-04T10:00:00Z", "freeBusy": "Maybe"}, "freeBusy"),
        ({"end": "2030-03-04T10:00:00Z"}, "start and end"),
        ({"start": "next tuesday", "end": "2030-03-04T10:00:00Z"}, "ISO 8601"),
        (["2030-03-04T09:00:00Z"], "JSON object"),
    ],
)
def test_invalid_seeds_are_refused(sim: SimClient, seed: Any, problem: str) -> None:
    response = post(sim, f"/mailboxes/{ALICE}/calendar", seed)
    assert response.status_code == 400
    assert problem in response.json()["error"]
    assert sim.calendar(ALICE) == []


def test_calendar_of_unknown_mailbox_is_404(sim: SimClient) -> None:
    seed = {"start": "2030-03-04T09:00:00Z", "end": "2030-03-04T10:00:00Z"}
    for response in (
        get(sim, "/mailboxes/nobody@contoso.com/calendar"),
        post(sim, "/mailboxes/nobody@contoso.com/calendar", seed),
    ):
        assert response.status_code == 404
        assert "nobody@contoso.com" in response.json()["error"]
    # An address of a configured domain is a mailbox even though nobody listed it.
    assert get(sim, "/mailboxes/anyone@fabrikam.com/calendar").json() == []


# --- /_sim/reset and /_sim/limits ----------------------------------------------------------------------


def test_reset_empties_state_but_keeps_the_configured_organisation(sim: SimClient) -> None:
    sim.seed(ALICE, subject="Old", start="2030-03-04T09:00:00Z", end="2030-03-04T10:00:00Z")
    sim.fault(operation="CreateItem", responseCode="ErrorServerBusy")
    sim.limits(3)
    sim.add_mailboxes("erin@contoso.com")
    assert ews_account(sim.ews_url, "bob@contoso.com").calendar.total_count == 0
    assert sim.log()

    response = post(sim, "/reset")
    assert response.status_code == 200
    assert sim.calendar(ALICE) == []
    assert get(sim, "/faults").json() == []
    assert sim.log() == []
    assert get(sim, "/limits").json()["maxConcurrency"] == 27
    mailboxes = get(sim, "/mailboxes").json()
    assert {ALICE, "bob@contoso.com", "carol@contoso.com", "dave@contoso.com"} <= set(mailboxes["mailboxes"])
    assert "erin@contoso.com" not in mailboxes["mailboxes"]
    assert mailboxes["domains"] == ["fabrikam.com"]
    alice = ews_account(sim.ews_url, ALICE)
    start = EWSDateTime(2030, 3, 4, 9, 0, tzinfo=UTC)
    CalendarItem(
        account=alice, folder=alice.calendar, subject="New", start=start, end=start + dt.timedelta(hours=1)
    ).save(send_meeting_invitations="SendToNone")
    assert [i["subject"] for i in sim.calendar(ALICE)] == ["New"]


@pytest.mark.parametrize(
    "body",
    [
        {"maxConcurrency": 0},
        {"maxConcurrency": -1},
        {"maxConcurrency": "3"},
        {"maxConcurrency": True},
        {"maxConcurrency": 1.5},
        {},
        [3],
    ],
)
def test_bad_limits_are_refused(sim: SimClient, body: Any) -> None:
    response = post(sim, "/limits", body)
    assert response.status_code == 400
    assert "maxConcurrency" in response.json()["error"]
    assert get(sim, "/limits").json()["maxConcurrency"] == 27


def test_limits_are_set(sim: SimClient) -> None:
    response = post(sim, "/limits", {"maxConcurrency": 5})
    assert (response.status_code, response.json()) == (200, {"maxConcurrency": 5})
    assert get(sim, "/limits").json()["maxConcurrency"] == 5


# --- OrgConfig ---------------------------------------------------------------------------------------------

YAML_ORG = """\
service_accounts:
  - username: Sync@Northwind.test
    password: pw1
    impersonate: "*"
  - username: desk@northwind.test
    password: pw2
    impersonate: [ann@northwind.test]
mailboxes: [ann@northwind.test, Ben@Northwind.test]
domains: [Tailspin.test]
"""


def _check_org(config: OrgConfig) -> Organisation:
    org = Organisation()
    config.apply(org)
    assert org.is_mailbox("ann@northwind.test") and org.is_mailbox("ben@northwind.test")
    assert org.is_mailbox("whoever@tailspin.test")
    assert not org.is_mailbox("carl@northwind.test")
    # Service accounts have mailboxes of their own.
    assert org.is_mailbox("sync@northwind.test") and org.is_mailbox("desk@northwind.test")
    assert org.accounts["sync@northwind.test"].may_impersonate("whoever@tailspin.test")
    assert org.accounts["desk@northwind.test"].may_impersonate("ann@northwind.test")
    assert not org.accounts["desk@northwind.test"].may_impersonate("ben@northwind.test")
    return org


def test_config_from_yaml_file_serves_exchangelib(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(YAML_ORG, encoding="utf-8")
    config = OrgConfig.load(path)
    _check_org(config)
    running = start_in_thread(Simulator(config))
    try:
        account = ews_account(running.ews_url, "whoever@tailspin.test", username="Sync@Northwind.test", password="pw1")
        assert account.calendar.total_count == 0
        with pytest.raises(ErrorImpersonateUserDenied):
            ews_account(running.ews_url, "ben@northwind.test", username="desk@northwind.test", password="pw2").calendar  # noqa: B018
    finally:
        running.stop()


def test_config_from_json_file(tmp_path: Path) -> None:
    path = tmp_path / "org.json"
    path.write_text(
        json.dumps(
            {
                "service_accounts": [
                    {"username": "sync@northwind.test", "password": "pw1", "impersonate": ["*"]},
                    {"username": "desk@northwind.test", "password": "pw2", "impersonate": ["ann@northwind.test"]},
                ],
                "mailboxes": ["ann@northwind.test", "ben@northwind.test"],
                "domains": ["tailspin.test"],
            }
        ),
        encoding="utf-8",
    )
    _check_org(OrgConfig.load(path))


def test_empty_yaml_file_is_an_empty_organisation(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert OrgConfig.load(path) == OrgConfig()


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("bad.yaml", "mailboxes: [ann@northwind.test\n", "bad.yaml"),
        ("bad.json", '{"mailboxes": ["ann@northwind.test",]}', "line 1"),
        ("list.yaml", "- ann@northwind.test\n", "the top level must be a mapping"),
        ("extra.yaml", "mailbox: [ann@northwind.test]\n", "unknown keys mailbox"),
        ("str.yaml", "mailboxes: ann@northwind.test\n", "mailboxes must be a list of strings"),
        ("dom.json", '{"domains": [1]}', "domains must be a list of strings"),
        ("nopw.yaml", "service_accounts:\n  - username: a@b.test\n", "service_accounts[0] needs username and password"),
        ("map.yaml", "service_accounts:\n  a@b.test: pw\n", "service_accounts must be a list"),
        (
            "imp.yaml",
            "service_accounts:\n  - {username: a@b.test, password: p, impersonate: 5}\n",
            "service_accounts[0].impersonate must be a list",
        ),
    ],
)
def test_malformed_config_raises_config_error(tmp_path: Path, name: str, text: str, problem: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        OrgConfig.load(path)
    assert problem in str(caught.value)
    assert str(path) in str(caught.value)


def test_config_that_is_not_utf8_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("mailboxes: [jos\xe9@northwind.test]\n".encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        OrgConfig.load(path)
    assert str(path) in str(caught.value)


def test_add_demo_domain() -> None:
    config = OrgConfig(mailboxes=["ann@northwind.test"])
    config.add_demo_domain(" Fabrikam.TEST ")
    assert config.domains == ["fabrikam.test"]
    org = Organisation()
    config.apply(org)
    assert org.is_mailbox("anyone@fabrikam.test") and org.is_mailbox("ann@northwind.test")
    service = org.accounts["svc@fabrikam.test"]
    assert service.password == DEMO_PASSWORD
    assert service.may_impersonate("anyone@fabrikam.test")


# --- downsync ews-sim --------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def cli_simulator() -> Iterator[str]:
    """``downsync ews-sim --domain fabrikam.test`` in a subprocess; yields its base URL."""
    port = _free_port()
    command = [str(Path(sys.executable).with_name("downsync")), "ews-sim", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--domain", "fabrikam.test"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"downsync ews-sim exited with {process.returncode}: {output}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("downsync ews-sim did not open its port")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_cli_simulator_serves_exchangelib(cli_simulator: str) -> None:
    account = ews_account(
        f"{cli_simulator}/EWS/Exchange.asmx",
        "anyone@fabrikam.test",
        username="svc@fabrikam.test",
        password=DEMO_PASSWORD,
    )
    start = EWSDateTime(2030, 5, 6, 14, 0, tzinfo=UTC)
    CalendarItem(
        account=account, folder=account.calendar, subject="From the CLI", start=start, end=start + dt.timedelta(hours=1)
    ).save(send_meeting_invitations="SendToNone")
    [item] = list(account.calendar.all())
    assert (item.subject, item.start, item.end) == ("From the CLI", start, start + dt.timedelta(hours=1))
    stored = requests.get(f"{cli_simulator}/_sim/mailboxes/anyone@fabrikam.test/calendar", timeout=5).json()
    assert [i["subject"] for i in stored] == ["From the CLI"]


@pytest.fixture
def no_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command that should fail must not start a server and block the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("downsync ews-sim started serving")

    monkeypatch.setattr(sim_app, "serve", refuse)


@pytest.mark.usefixtures("no_serving")
def test_cli_strict_without_schema_is_a_usage_error(tmp_path: Path) -> None:
    empty = tmp_path / "no-schema"
    empty.mkdir()
    result = CliRunner().invoke(main, ["ews-sim", "--strict"], env={"DOWNSYNC_EWS_SCHEMA_DIR": str(empty)})
    assert result.exit_code == 2, result.output
    assert "--strict needs the EWS schema" in result.output
    assert str(empty) in result.output
    result = CliRunner().invoke(main, ["ews-sim", "--strict", "--schema-dir", str(empty)])
    assert result.exit_code == 2, result.output
    assert "has no messages.xsd" in result.output


@pytest.mark.usefixtures("no_serving")
@pytest.mark.parametrize(
    ("text", "problem"),
    [("mailboxes: [a@b.test\n", "org.yaml"), ("mailboxes: a@b.test\n", "must be a list of strings")],
)
def test_cli_malformed_config_is_a_usage_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(main, ["ews-sim", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output
    assert problem in result.output
    assert "Traceback" not in result.output

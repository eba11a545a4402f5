"""Apps, tenants and Graph's per-mailbox settings: from the config file, ``--domain``, and the control API."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ews_sim.app import start_in_thread
from ews_sim.config import ConfigError, OrgConfig
from ews_sim.graph.directory import Directory, tenant_id
from ews_sim.server import Simulator
from ews_sim.testing import CERT_APP_CERTIFICATE, SimClient, graph_client
from ews_sim.tls import generate

APP = {"tenant": "northwind.test", "client_id": "app-1", "client_secret": "pw"}


@pytest.mark.parametrize(
    ("apps", "problem"),
    [
        ({"tenant": "x"}, "must be a list"),
        (["app"], "apps[0] must be a mapping"),
        ([{"client_id": "a", "client_secret": "s"}], "needs tenant"),
        ([{"tenant": "t", "client_secret": "s"}], "needs client_id"),
        ([{"tenant": "t", "client_id": "a"}], "exactly one of client_secret and certificate"),
        ([APP | {"certificate": CERT_APP_CERTIFICATE}], "exactly one of client_secret and certificate"),
        ([{"tenant": "t", "client_id": "a", "certificate": "not a PEM"}], "PEM text of an X.509 certificate"),
        ([APP | {"mailboxes": "everyone"}], 'mailboxes must be a list of addresses or "*"'),
        ([APP | {"roles": "Calendars.ReadWrite"}], "roles must be a list of strings"),
        ([APP | {"colour": "red"}], "unknown keys colour"),
    ],
)
def test_bad_apps_are_refused_with_a_reason(apps: Any, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        OrgConfig.from_dict({"apps": apps})


def test_the_graph_keys_of_a_yaml_config(tmp_path: Path) -> None:
    path = tmp_path / "org.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "mailboxes": ["ann@northwind.test", "Ben@Northwind.test", "cy@northwind.test"],
                "apps": [APP | {"mailboxes": ["Ann@northwind.test"], "roles": ["Calendars.Read"]}],
                "on_premises": ["Ben@Northwind.test"],
                "teams_disabled": ["cy@northwind.test"],
                "token_lifetime_seconds": 600,
            }
        ),
        encoding="utf-8",
    )
    directory = Directory(OrgConfig.load(path))
    app = directory.app(tenant_id("northwind.test"), "APP-1")
    assert app is not None and app.may_access("ann@northwind.test") and not app.may_access("cy@northwind.test")
    assert app.roles == ["Calendars.Read"]
    assert directory.on_premises == {"ben@northwind.test"} and directory.teams_disabled == {"cy@northwind.test"}
    assert directory.token_lifetime == 600
    assert (
        directory.tenant("NORTHWIND.test")
        == directory.tenant(tenant_id("northwind.test"))
        == tenant_id("northwind.test")
    )
    assert directory.tenant("contoso.com") is None
    with pytest.raises(ConfigError, match="token_lifetime_seconds"):
        OrgConfig.from_dict({"token_lifetime_seconds": -1})


def test_a_tenant_named_by_its_guid_keeps_it() -> None:
    guid = "5f1d2c4e-0000-4000-8000-000000000001"
    directory = Directory(OrgConfig.from_dict({"apps": [APP | {"tenant": guid}]}))
    assert directory.tenant(guid) == guid and directory.app(guid, "app-1") is not None


def test_every_demo_domain_gets_a_demo_app_for_all_its_mailboxes(tmp_path: Path) -> None:
    config = OrgConfig()
    config.add_demo_domain("demo.test")
    config.add_demo_domain("Other.Test")
    running = start_in_thread(Simulator(config), tls=generate(tmp_path))
    try:
        client = SimClient(running)
        for domain in ("demo.test", "other.test"):
            token = client.graph_token("demo", "demo", tenant=domain)
            with graph_client(running, token) as graph:
                assert graph.get(f"/users/anyone@{domain}/events").status_code == 200
        # An app belongs to its tenant: demo.test's secret does not open another tenant's app of the same id.
        assert (
            client.msal_app("demo", "wrong", tenant="demo.test").acquire_token_for_client(
                scopes=["https://graph.microsoft.com/.default"]
            )["error"]
            == "invalid_client"
        )
    finally:
        running.stop()


def test_apps_added_at_runtime_work_until_the_next_reset(sim: SimClient) -> None:
    created = sim.add_app("runtime-app", client_secret="rt", mailboxes=["dave@contoso.com"])
    assert created == {
        "tenant": "contoso.com",
        "tenantId": tenant_id("contoso.com"),
        "clientId": "runtime-app",
        "credential": "secret",
        "mailboxes": ["dave@contoso.com"],
        "roles": ["Calendars.ReadWrite"],
    }
    assert "runtime-app" in {a["clientId"] for a in sim.apps()}
    with graph_client(sim.running, sim.graph_token("runtime-app", "rt")) as graph:
        assert graph.get("/users/dave@contoso.com/events").status_code == 200
        assert graph.get("/users/alice@contoso.com/events").status_code == 403
    sim.reset()
    assert "runtime-app" not in {a["clientId"] for a in sim.apps()}
    with pytest.raises(RuntimeError, match="unauthorized_client"):
        sim.graph_token("runtime-app", "rt")


def test_a_bad_runtime_app_is_refused(sim: SimClient) -> None:
    response = sim.http.post(f"{sim.url}/_sim/apps", json={"tenant": "contoso.com", "client_id": "x"}, timeout=5)
    assert response.status_code == 400 and "exactly one of client_secret and certificate" in response.json()["error"]


def test_mailboxes_added_at_runtime_can_be_on_premises_or_without_teams(sim: SimClient) -> None:
    sim.add_mailboxes("paul@contoso.com", on_premises=True)
    sim.add_mailboxes("quinn@contoso.com", teams_disabled=True)
    with graph_client(sim.running, sim.graph_token()) as graph:
        assert graph.get("/users/paul@contoso.com/events").json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
        assert graph.get("/users/quinn@contoso.com/calendar").json()["allowedOnlineMeetingProviders"] == []
    bad = sim.http.post(f"{sim.url}/_sim/mailboxes", json={"emails": ["x@contoso.com"], "onPremises": "yes"}, timeout=5)
    assert bad.status_code == 400

"""Pytest plugin: an in-process simulator for the test session, its control API, exchangelib accounts and Graph.

Load it with ``pytest_plugins = ["ews_sim.testing"]``. The simulator runs strict (every request
and response validated against the EWS schema, and every Graph request and response against
Graph's CSDL) when the schema folders are present. It listens twice: HTTP (``Running.url``, what
exchangelib uses) and HTTPS (``Running.tls_url``, what msal needs), trusting ``Running.ca_file``.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest
import requests
from exchangelib import BASIC, IMPERSONATION, Account, Configuration, Credentials
from exchangelib.protocol import BaseProtocol, FailFast, Protocol
from exchangelib.version import Build, Version

from ews_sim.app import Running, start_in_thread
from ews_sim.config import OrgConfig
from ews_sim.graph.schema import GraphSchema, default_graph_schema_dir
from ews_sim.schema import EwsSchema, default_schema_dir
from ews_sim.server import Simulator
from ews_sim.tls import generate, self_signed_rsa

SERVICE_ACCOUNT = "svc@contoso.com"
SERVICE_PASSWORD = "s3cret"
# Graph: Entra app registrations of the tenant contoso.com.
GRAPH_TENANT = "contoso.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
GRAPH_APP_ID = "11111111-1111-4111-8111-111111111111"  # may reach every mailbox
GRAPH_APP_SECRET = "graph-s3cret"
LIMITED_APP_ID = "22222222-2222-4222-8222-222222222222"  # application access policy: alice and bob only
LIMITED_APP_SECRET = "limited-s3cret"
NO_CONSENT_APP_ID = "33333333-3333-4333-8333-333333333333"  # no application permission consented
NO_CONSENT_APP_SECRET = "noconsent-s3cret"
CERT_APP_ID = "44444444-4444-4444-8444-444444444444"  # authenticates with a certificate
CERT_APP_KEY, CERT_APP_CERTIFICATE = self_signed_rsa("ews-sim test app")
ON_PREMISES_MAILBOX = "olga@contoso.com"  # hosted on-premises: Graph cannot reach it
TEAMS_DISABLED_MAILBOX = "tess@contoso.com"  # her calendar allows no online meeting provider
TEST_ORG: dict[str, Any] = {
    "service_accounts": [
        {"username": SERVICE_ACCOUNT, "password": SERVICE_PASSWORD, "impersonate": ["*"]},
        {"username": "helpdesk@contoso.com", "password": "h3lp", "impersonate": ["alice@contoso.com"]},
    ],
    "mailboxes": [
        "alice@contoso.com",
        "bob@contoso.com",
        "carol@contoso.com",
        "dave@contoso.com",
        ON_PREMISES_MAILBOX,
        TEAMS_DISABLED_MAILBOX,
    ],
    "domains": ["fabrikam.com"],
    "apps": [
        {"tenant": GRAPH_TENANT, "client_id": GRAPH_APP_ID, "client_secret": GRAPH_APP_SECRET, "mailboxes": ["*"]},
        {
            "tenant": GRAPH_TENANT,
            "client_id": LIMITED_APP_ID,
            "client_secret": LIMITED_APP_SECRET,
            "mailboxes": ["alice@contoso.com", "bob@contoso.com"],
        },
        {"tenant": GRAPH_TENANT, "client_id": NO_CONSENT_APP_ID, "client_secret": NO_CONSENT_APP_SECRET, "roles": []},
        {"tenant": GRAPH_TENANT, "client_id": CERT_APP_ID, "certificate": CERT_APP_CERTIFICATE},
    ],
    "on_premises": [ON_PREMISES_MAILBOX],
    "teams_disabled": [TEAMS_DISABLED_MAILBOX],
}
# The build the simulator reports by default, so exchangelib never has to guess a version.
DEFAULT_BUILD = Build(15, 1, 2507, 6)


class SimClient:
    """The simulator's control API over HTTP, as tests, the demo and benchmarks use it."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.url = running.url
        self.ews_url = running.ews_url
        self.tls_url = running.tls_url if running.tls_port is not None else None
        self.ca_file = running.ca_file
        self.verify = tls_context(running) if running.ca_file is not None else None
        self.http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.url}/_sim{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._call("POST", "/reset")

    def add_mailboxes(
        self,
        *emails: str,
        on_premises: bool = False,
        teams_disabled: bool = False,
        aliases: dict[str, list[str]] | None = None,
    ) -> None:
        """Add mailboxes (until the next reset); ``aliases`` gives mailboxes more addresses: ``{primary: [others]}``."""
        body: dict[str, Any] = {"emails": list(emails), "onPremises": on_premises, "teamsDisabled": teams_disabled}
        if aliases:
            body["aliases"] = aliases
        self._call("POST", "/mailboxes", json=body)

    def add_app(
        self,
        client_id: str,
        client_secret: str | None = None,
        certificate: str | None = None,
        tenant: str = GRAPH_TENANT,
        mailboxes: list[str] | None = None,
        roles: list[str] | None = None,
    ) -> dict[str, Any]:
        """Register a Graph app (until the next reset), as the config's ``apps`` do."""
        app: dict[str, Any] = {"tenant": tenant, "client_id": client_id, "mailboxes": mailboxes or ["*"]}
        app.update({k: v for k, v in (("client_secret", client_secret), ("certificate", certificate)) if v is not None})
        if roles is not None:
            app["roles"] = roles
        return self._call("POST", "/apps", json=app)

    def apps(self) -> list[dict[str, Any]]:
        return self._call("GET", "/apps")

    def calendar(self, email: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/mailboxes/{email}/calendar")

    def seed(self, email: str, **item: Any) -> dict[str, Any]:
        return self._call("POST", f"/mailboxes/{email}/calendar", json=item)

    def respond(self, email: str, response: str, **ids: str) -> dict[str, Any]:
        return self._call("POST", f"/mailboxes/{email}/respond", json={"response": response, **ids})

    def fault(self, **rule: Any) -> dict[str, Any]:
        return self._call("POST", "/faults", json=rule)

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def limits(
        self,
        max_concurrency: int | None = None,
        *,
        graph_mailbox_concurrency: int | None = None,
        graph_schedule_max: int | None = None,
        token_lifetime_seconds: int | None = None,
    ) -> dict[str, int]:
        """Set any of the limits (unset ones stay); returns them all."""
        body = {
            name: value
            for name, value in (
                ("maxConcurrency", max_concurrency),
                ("graphMailboxConcurrency", graph_mailbox_concurrency),
                ("graphScheduleMaxMailboxes", graph_schedule_max),
                ("tokenLifetimeSeconds", token_lifetime_seconds),
            )
            if value is not None
        }
        if body:
            self._call("POST", "/limits", json=body)
        return self._call("GET", "/limits")

    def log(self, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", "/log", params={"since": since})

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Meeting requests, updates and cancellations sent so far, oldest first."""
        return self._call("GET", "/messages", params={"to": to} if to else {})

    def schema_errors(self) -> list[dict[str, Any]]:
        return self._call("GET", "/schema-errors")["errors"]

    # --- Graph over HTTPS ------------------------------------------------------------------------------------

    def msal_app(
        self, client_id: str = GRAPH_APP_ID, credential: Any = GRAPH_APP_SECRET, tenant: str = GRAPH_TENANT
    ) -> msal.ConfidentialClientApplication:
        """A real msal client of the simulator's Entra, as the service builds one (secret or certificate dict)."""
        return msal_app(self.running, client_id, credential, tenant)

    def graph_token(
        self, client_id: str = GRAPH_APP_ID, credential: Any = GRAPH_APP_SECRET, tenant: str = GRAPH_TENANT
    ) -> str:
        result = self.msal_app(client_id, credential, tenant).acquire_token_for_client(scopes=[GRAPH_SCOPE])
        if "access_token" not in result:
            raise RuntimeError(f"no token: {result.get('error')}: {result.get('error_description')}")
        return str(result["access_token"])

    def graph_client(self, token: str | None = None) -> httpx.Client:
        """An httpx client of Graph (``base_url`` .../v1.0) with a bearer token (the all-mailbox app's by default)."""
        return graph_client(self.running, token if token is not None else self.graph_token())


def ews_account(
    ews_url: str,
    email: str,
    username: str = SERVICE_ACCOUNT,
    password: str = SERVICE_PASSWORD,
    build: Build | None = DEFAULT_BUILD,
) -> Account:
    """An exchangelib Account as the service builds one: impersonation, no autodiscover, fixed build, FailFast.

    ``build=None`` pins no version: exchangelib guesses it (with ConvertId) on a protocol of its own, as a client
    configured without a version does."""
    config = Configuration(
        service_endpoint=ews_url,
        credentials=Credentials(username, password),
        auth_type=BASIC,
        version=Version(build=build) if build is not None else None,
        retry_policy=FailFast(),
    )
    if build is None:
        forget_protocol(config)
    return Account(email, config=config, autodiscover=False, access_type=IMPERSONATION)


def forget_protocol(config: Configuration) -> None:
    """Drop exchangelib's cached protocol for this endpoint and login, so the next one starts from scratch (it keeps
    one per endpoint and credentials, version included)."""
    try:
        cached = Protocol[config]
    except KeyError:
        return
    protocol = cached[0] if isinstance(cached, tuple) else cached
    if not isinstance(protocol, Exception):
        protocol.close()
    del Protocol[config]


@pytest.fixture(scope="session")
def ews_schema() -> EwsSchema | None:
    directory = default_schema_dir()
    return EwsSchema(directory) if directory else None


def msal_app(
    running: Running, client_id: str = GRAPH_APP_ID, credential: Any = GRAPH_APP_SECRET, tenant: str = GRAPH_TENANT
) -> msal.ConfidentialClientApplication:
    """msal against the simulator's Entra over HTTPS. Its HTTP session trusts ``running.ca_file`` and ignores the
    environment: requests lets ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE`` override msal's ``verify=`` argument."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(running.ca_file)
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=credential,
        authority=running.authority(tenant),
        instance_discovery=False,
        http_client=session,
    )


def tls_context(running: Running) -> ssl.SSLContext:
    """What an HTTPS client of the simulator verifies its certificate with (httpx's ``verify=``)."""
    return ssl.create_default_context(cafile=str(running.ca_file))


def graph_client(running: Running, token: str, timeout: float = 10) -> httpx.Client:
    return httpx.Client(
        base_url=running.graph_url,
        verify=tls_context(running),
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def graph_schema() -> GraphSchema | None:
    directory = default_graph_schema_dir()
    return GraphSchema.load(directory) if directory else None


@pytest.fixture(scope="session")
def sim_tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ews-sim-tls")


@pytest.fixture(scope="session")
def ews_simulator(
    ews_schema: EwsSchema | None, graph_schema: GraphSchema | None, sim_tls_dir: Path
) -> Iterator[Running]:
    simulator = Simulator(OrgConfig.from_dict(TEST_ORG), schema=ews_schema, graph_schema=graph_schema)
    running = start_in_thread(simulator, tls=generate(sim_tls_dir))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def graph_token(ews_simulator: Running) -> str:
    """An access token of the all-mailbox app (GRAPH_APP_ID), from the simulator's Entra through msal."""
    result = msal_app(ews_simulator).acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result
    return str(result["access_token"])


@pytest.fixture
def graph(sim: SimClient, graph_token: str) -> Iterator[httpx.Client]:
    """Graph over HTTPS as the all-mailbox app, on a reset simulator (``sim``)."""
    with graph_client(sim.running, graph_token) as client:
        yield client


@pytest.fixture
def sim(ews_simulator: Running) -> Iterator[SimClient]:
    """A reset simulator; the test fails if any response it sent broke the schema."""
    client = SimClient(ews_simulator)
    client.reset()
    timeout = BaseProtocol.TIMEOUT
    yield client
    BaseProtocol.TIMEOUT = timeout
    errors = client.schema_errors()
    assert not errors, f"the simulator sent responses that break the EWS or Graph schema: {errors}"

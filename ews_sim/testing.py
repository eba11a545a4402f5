"""Pytest plugin: an in-process simulator for the test session, its control API and exchangelib accounts.

Load it with ``pytest_plugins = ["ews_sim.testing"]``. The simulator runs strict (every request
and response validated against the EWS schema) when the schema folder is present.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from exchangelib import BASIC, IMPERSONATION, Account, Configuration, Credentials
from exchangelib.protocol import BaseProtocol, FailFast
from exchangelib.version import Build, Version

from ews_sim.app import Running, start_in_thread
from ews_sim.config import OrgConfig
from ews_sim.schema import EwsSchema, default_schema_dir
from ews_sim.server import Simulator

SERVICE_ACCOUNT = "svc@contoso.com"
SERVICE_PASSWORD = "s3cret"
TEST_ORG: dict[str, Any] = {
    "service_accounts": [
        {"username": SERVICE_ACCOUNT, "password": SERVICE_PASSWORD, "impersonate": ["*"]},
        {"username": "helpdesk@contoso.com", "password": "h3lp", "impersonate": ["alice@contoso.com"]},
    ],
    "mailboxes": ["alice@contoso.com", "bob@contoso.com", "carol@contoso.com", "dave@contoso.com"],
    "domains": ["fabrikam.com"],
}
# The build the simulator reports by default, so exchangelib never has to guess a version.
DEFAULT_BUILD = Build(15, 1, 2507, 6)


class SimClient:
    """The simulator's control API over HTTP, as tests, the demo and benchmarks use it."""

    def __init__(self, running: Running) -> None:
        self.running = running
        self.url = running.url
        self.ews_url = running.ews_url
        self.http = requests.Session()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, f"{self.url}/_sim{path}", timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        self._call("POST", "/reset")

    def add_mailboxes(self, *emails: str) -> None:
        self._call("POST", "/mailboxes", json={"emails": list(emails)})

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

    def limits(self, max_concurrency: int) -> None:
        self._call("POST", "/limits", json={"maxConcurrency": max_concurrency})

    def log(self, since: int = 0) -> list[dict[str, Any]]:
        return self._call("GET", "/log", params={"since": since})

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Meeting requests, updates and cancellations sent so far, oldest first."""
        return self._call("GET", "/messages", params={"to": to} if to else {})

    def schema_errors(self) -> list[dict[str, Any]]:
        return self._call("GET", "/schema-errors")["errors"]


def ews_account(
    ews_url: str,
    email: str,
    username: str = SERVICE_ACCOUNT,
    password: str = SERVICE_PASSWORD,
    build: Build = DEFAULT_BUILD,
) -> Account:
    """An exchangelib Account as the service builds one: impersonation, no autodiscover, fixed build, FailFast."""
    config = Configuration(
        service_endpoint=ews_url,
        credentials=Credentials(username, password),
        auth_type=BASIC,
        version=Version(build=build),
        retry_policy=FailFast(),
    )
    return Account(email, config=config, autodiscover=False, access_type=IMPERSONATION)


@pytest.fixture(scope="session")
def ews_schema() -> EwsSchema | None:
    directory = default_schema_dir()
    return EwsSchema(directory) if directory else None


@pytest.fixture(scope="session")
def ews_simulator(ews_schema: EwsSchema | None) -> Iterator[Running]:
    running = start_in_thread(Simulator(OrgConfig.from_dict(TEST_ORG), schema=ews_schema))
    yield running
    running.stop()


@pytest.fixture
def sim(ews_simulator: Running) -> Iterator[SimClient]:
    """A reset simulator; the test fails if any response it sent broke the schema."""
    client = SimClient(ews_simulator)
    client.reset()
    timeout = BaseProtocol.TIMEOUT
    yield client
    BaseProtocol.TIMEOUT = timeout
    errors = client.schema_errors()
    assert not errors, f"the simulator sent responses that break the EWS schema: {errors}"

"""exchangelib accounts per tenant and mailbox: impersonation, no autodiscover, a fixed build, FailFast."""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

from exchangelib import BASIC, IMPERSONATION, NTLM, Account, Configuration, Credentials
from exchangelib.folders import Calendar, DistinguishedFolderId, Root
from exchangelib.properties import Mailbox
from exchangelib.protocol import FailFast
from exchangelib.version import Build, Version

from downsync.backends.ews import EwsOptions, tuning
from downsync.core.errors import MAILBOX_NOT_FOUND, PermanentError

AUTH_TYPES = {"basic": BASIC, "ntlm": NTLM}


tuning.apply()


@dataclass(frozen=True)
class Connection:
    """What a worker needs to reach one tenant's Exchange; hashable so accounts can be cached per tenant."""

    tenant_id: int
    url: str
    username: str
    password: str
    auth_type: str
    build: str
    timeout: float
    max_connections: int = 10

    @classmethod
    def from_options(cls, options: EwsOptions, tenant_id: int, timeout: float, max_connections: int = 10) -> Connection:
        return cls(
            tenant_id=tenant_id,
            url=options.url,
            username=options.username,
            password=options.password.get_secret_value(),
            auth_type=options.auth_type,
            build=options.build,
            timeout=timeout,
            max_connections=max_connections,
        )

    def __repr__(self) -> str:  # the password stays out of logs and error reports
        return f"Connection(tenant_id={self.tenant_id}, url={self.url!r}, username={self.username!r})"


@functools.lru_cache(maxsize=64)
def configuration(connection: Connection) -> Configuration:
    parts = [int(p) for p in connection.build.split(".")]
    return Configuration(
        service_endpoint=connection.url,
        credentials=Credentials(connection.username, connection.password),
        auth_type=AUTH_TYPES[connection.auth_type],
        # A known build keeps exchangelib from probing the server's version on first use.
        version=Version(build=Build(*parts)),
        retry_policy=FailFast(),
        max_connections=connection.max_connections,
    )


_lock = threading.Lock()


@functools.lru_cache(maxsize=4096)
def _account(connection: Connection, mailbox: str) -> Account:
    account = Account(mailbox, config=configuration(connection), autodiscover=False, access_type=IMPERSONATION)
    account.protocol.TIMEOUT = connection.timeout
    # exchangelib shares one protocol (and its session pool) per endpoint and user in the process: as large as the
    # largest any gateway asked for.
    protocol = account.protocol
    protocol.max_connections = max(protocol.max_connections, connection.max_connections)
    return account


def account(connection: Connection, mailbox: str) -> Account:
    try:
        # The impersonated address travels in HTTP headers (X-AnchorMailbox), which carry Latin-1 only.
        mailbox.encode("latin-1")
    except UnicodeEncodeError:
        raise PermanentError(MAILBOX_NOT_FOUND, f"{mailbox!r} cannot be addressed through EWS") from None
    with _lock:
        return _account(connection, mailbox.lower())


def calendar(acct: Account) -> Calendar:
    """The mailbox's calendar by its distinguished name, without the two GetFolder calls ``account.calendar`` makes."""
    return Calendar(
        root=Root(account=acct),
        _distinguished_id=DistinguishedFolderId(
            id="calendar", mailbox=Mailbox(email_address=acct.primary_smtp_address)
        ),
    )

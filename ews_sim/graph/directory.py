"""The Entra side of the organisation: tenants, app registrations, access policies and Graph's limits.

A tenant is known by its domain (``contoso.com``) or its id, a GUID derived from the domain as
Entra would hold one; tokens carry the GUID. Apps are keyed by (tenant id, client id), so every
``--domain`` may have its own ``demo`` app.
"""

from __future__ import annotations

import base64
import collections
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from ews_sim.config import AppConfig, ConfigError, OrgConfig

DEFAULT_MAILBOX_CONCURRENCY = 4
# Microsoft documents 20 schedules per getSchedule call (Exchange Online was seen accepting 100).
DEFAULT_SCHEDULE_MAX = 20
_TENANT_NAMESPACE = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")  # uuid.NAMESPACE_URL


def tenant_id(tenant: str) -> str:
    """The tenant's GUID: itself if it is one, else derived from the domain name."""
    try:
        return str(uuid.UUID(tenant))
    except ValueError:
        return str(uuid.uuid5(_TENANT_NAMESPACE, "entra-tenant:" + tenant.strip().lower()))


def object_id(kind: str, name: str) -> str:
    """A stable directory object id (service principal, user) for ``name``."""
    return str(uuid.uuid5(_TENANT_NAMESPACE, f"entra-{kind}:{name.strip().lower()}"))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class App:
    tenant: str  # as configured: a domain or a GUID
    tenant_id: str
    client_id: str
    client_secret: str | None
    mailboxes: set[str]  # lower-cased addresses, or {"*"}
    roles: list[str]
    certificate: x509.Certificate | None = None
    # base64url SHA-1 (``x5t``) and SHA-256 (``x5t#S256``) thumbprints of the certificate.
    thumbprints: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_config(cls, app: AppConfig) -> App:
        certificate = None
        thumbprints: dict[str, str] = {}
        if app.certificate is not None:
            try:
                certificate = x509.load_pem_x509_certificate(app.certificate.encode())
            except ValueError as exc:
                raise ConfigError(
                    f"app {app.client_id}: the certificate is not a PEM X.509 certificate ({exc})"
                ) from exc
            thumbprints = {
                "x5t": b64url(certificate.fingerprint(hashes.SHA1())),  # Entra's legacy thumbprint
                "x5t#S256": b64url(certificate.fingerprint(hashes.SHA256())),
            }
        return cls(
            tenant=app.tenant,
            tenant_id=tenant_id(app.tenant),
            client_id=app.client_id,
            client_secret=app.client_secret,
            mailboxes={m.strip().lower() for m in app.mailboxes},
            roles=list(app.roles),
            certificate=certificate,
            thumbprints=thumbprints,
        )

    @property
    def public_key(self) -> CertificateIssuerPublicKeyTypes | None:
        return self.certificate.public_key() if self.certificate is not None else None

    def may_access(self, email: str) -> bool:
        return "*" in self.mailboxes or email.lower() in self.mailboxes

    def as_json(self) -> dict[str, object]:
        return {
            "tenant": self.tenant,
            "tenantId": self.tenant_id,
            "clientId": self.client_id,
            "credential": "certificate" if self.certificate is not None else "secret",
            "mailboxes": sorted(self.mailboxes),
            "roles": self.roles,
        }


class Directory:
    """Everything Graph needs beyond the mailboxes: rebuilt from the configuration by a reset (the token signing
    key and the in-flight counters survive it, so tokens cached by clients stay valid)."""

    def __init__(self, config: OrgConfig) -> None:
        self.signing_key = secrets.token_bytes(32)
        self.inflight: collections.Counter[str] = collections.Counter()
        # Access tokens whose signature and claims were checked once -> their claims (see auth.authenticate).
        self.verified: dict[str, dict[str, Any]] = {}
        self.reset(config)

    def reset(self, config: OrgConfig) -> None:
        self.tenants: dict[str, str] = {}  # domain or GUID -> GUID
        self.tenant_names: dict[str, str] = {}  # GUID -> the name it was configured with
        self.apps: dict[tuple[str, str], App] = {}
        self.on_premises = {e.lower() for e in config.on_premises}
        self.teams_disabled = {e.lower() for e in config.teams_disabled}
        self.token_lifetime = config.token_lifetime_seconds
        self.mailbox_concurrency = DEFAULT_MAILBOX_CONCURRENCY
        self.schedule_max = DEFAULT_SCHEDULE_MAX
        for app in config.apps:
            self.add_app(app)

    def add_app(self, config: AppConfig) -> App:
        app = App.from_config(config)
        self.tenants[config.tenant] = app.tenant_id
        self.tenants[app.tenant_id] = app.tenant_id
        self.tenant_names.setdefault(app.tenant_id, config.tenant)
        self.apps[(app.tenant_id, app.client_id.lower())] = app
        return app

    def tenant(self, name: str) -> str | None:
        """The GUID of a tenant named by domain or GUID, None if the directory has no such tenant."""
        name = name.strip().lower()
        found = self.tenants.get(name)
        if found is None:
            try:
                found = self.tenants.get(str(uuid.UUID(name)))
            except ValueError:
                return None
        return found

    def app(self, tid: str, client_id: str) -> App | None:
        return self.apps.get((tid, client_id.strip().lower()))

    def client_known_elsewhere(self, client_id: str) -> bool:
        return any(cid == client_id.strip().lower() for _, cid in self.apps)

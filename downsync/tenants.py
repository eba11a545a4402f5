"""Tenants, their calendar backend and its settings (secrets encrypted at rest), and their API tokens."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, select

from downsync import backends
from downsync.core.converge import TenantContext, TenantUnusable
from downsync.core.gateway import CalendarGateway
from downsync.db import session_scope
from downsync.models import ApiToken, Tenant, utcnow
from downsync.settings import BUSY_TYPES, Settings, get_settings

SCOPES = ("availability", "sync")
TOKEN_PREFIX = "dsk_"


class TenantError(ValueError):
    pass


def _fernet() -> Fernet:
    digest = hashlib.sha256(get_settings().secret_key.get_secret_value().encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt_secret(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt_secret(value: str) -> str:
    try:
        return _fernet().decrypt(value.encode()).decode()
    except InvalidToken as exc:
        raise TenantUnusable(
            "the tenant's stored secrets cannot be decrypted: was DOWNSYNC_SECRET_KEY changed?"
        ) from exc


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _availability_settings(busy_types: str, availability_on_error: str) -> str:
    types = [t.strip() for t in busy_types.split(",") if t.strip()]
    if not types or set(types) - set(BUSY_TYPES):
        raise TenantError(f"busy types must be some of {', '.join(BUSY_TYPES)}")
    if availability_on_error not in ("closed", "free"):
        raise TenantError("availability on error must be closed or free")
    return ",".join(types)


def create_tenant(
    session: Session,
    name: str,
    backend: str,
    options: dict[str, Any],
    busy_types: str = "Busy,OOF,Tentative,WorkingElsewhere",
    availability_on_error: str = "closed",
) -> Tenant:
    """A tenant on ``backend`` with its settings (as the backend's options model names them)."""
    if not name.strip():
        raise TenantError("a tenant needs a name")
    if session.exec(select(Tenant).where(Tenant.name == name)).first() is not None:
        raise TenantError(f"tenant {name!r} exists already")
    try:
        validated = backends.validate(backend, options)
    except backends.BackendError as exc:
        raise TenantError(str(exc)) from exc
    plain, hidden = backends.split(validated)
    tenant = Tenant(
        name=name,
        backend=backend,
        backend_options=plain,
        backend_secrets={key: encrypt_secret(value) for key, value in hidden.items()},
        busy_types=_availability_settings(busy_types, availability_on_error),
        availability_on_error=availability_on_error,
    )
    session.add(tenant)
    session.flush()
    return tenant


def backend_options(tenant: Tenant) -> BaseModel:
    """The tenant's backend settings with its secrets decrypted (never logged: secrets stay ``SecretStr``)."""
    values: dict[str, Any] = dict(tenant.backend_options)
    values.update({key: decrypt_secret(value) for key, value in tenant.backend_secrets.items()})
    try:
        return backends.validate(tenant.backend, values)
    except backends.BackendError as exc:
        raise TenantUnusable(f"tenant {tenant.name}: {exc}") from exc


def gateway_for(tenant: Tenant, settings: Settings | None = None) -> CalendarGateway:
    assert tenant.id is not None
    return backends.open_gateway(
        tenant.id, tenant.backend, backend_options(tenant), settings or get_settings(), tenant.updated_at.isoformat()
    )


def tenant_by_name(session: Session, name: str) -> Tenant:
    tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        raise TenantError(f"no tenant named {name!r}")
    return tenant


class TenantDirectory:
    """Tenants as the workers need them, read from the store at most every ``ttl`` seconds per tenant, so a
    changed setting reaches every worker within that time."""

    def __init__(
        self, engine: Engine, settings: Settings, ttl: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[int, tuple[float, TenantContext]] = {}
        self._lock = threading.Lock()

    def __call__(self, tenant_id: int) -> TenantContext:
        with self._lock:
            cached = self._cache.get(tenant_id)
        if cached is not None and self.clock() - cached[0] < self.ttl:
            return cached[1]
        with session_scope(self.engine) as session:
            tenant = session.get(Tenant, tenant_id)
            if tenant is None:
                raise TenantUnusable(f"tenant {tenant_id} no longer exists")
            context = TenantContext(name=tenant.name, tag_id=tenant.tag_id, gateway=gateway_for(tenant, self.settings))
        with self._lock:
            self._cache[tenant_id] = (self.clock(), context)
        return context


def create_token(session: Session, tenant_name: str, scopes: list[str]) -> str:
    """A new bearer token for the tenant; the plain token is returned once and only its hash is kept."""
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise TenantError(f"scopes must be some of {', '.join(SCOPES)}")
    tenant = tenant_by_name(session, tenant_name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    assert tenant.id is not None
    session.add(ApiToken(tenant_id=tenant.id, token_hash=hash_token(token), scopes=",".join(sorted(set(scopes)))))
    session.flush()
    return token


@dataclass(frozen=True)
class Principal:
    tenant_id: int
    tenant_name: str
    scopes: frozenset[str]


def authenticate(session: Session, token: str) -> Principal | None:
    found = session.exec(
        select(ApiToken, Tenant)
        .join(Tenant, Tenant.id == ApiToken.tenant_id)  # type: ignore[arg-type]
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at == None)  # noqa: E711
    ).first()
    if found is None:
        return None
    api_token, tenant = found
    assert tenant.id is not None
    return Principal(tenant_id=tenant.id, tenant_name=tenant.name, scopes=frozenset(api_token.scope_set))


def revoke_tokens(session: Session, tenant_name: str) -> int:
    tenant = tenant_by_name(session, tenant_name)
    tokens = session.exec(select(ApiToken).where(ApiToken.tenant_id == tenant.id, ApiToken.revoked_at == None)).all()  # noqa: E711
    for token in tokens:
        token.revoked_at = utcnow()
        session.add(token)
    return len(tokens)

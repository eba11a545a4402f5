"""Tenants, their calendar backend and its settings (secrets encrypted at rest), and their API tokens."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from limits import parse_many
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, select

from downsync import backends
from downsync.core.converge import TenantContext, TenantUnusable
from downsync.core.gateway import CalendarGateway
from downsync.db import session_scope
from downsync.metrics import MeteredGateway
from downsync.models import Tenant
from downsync.settings import BUSY_TYPES, Settings, get_settings


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
    rate_limit_writes: str | None = None,
    rate_limit_availability: str | None = None,
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
    for limit in (rate_limit_writes, rate_limit_availability):
        if limit is not None:
            try:
                parse_many(limit)
            except ValueError:
                raise TenantError(f"{limit!r} is not a rate limit such as 100/second or 1000/minute") from None
    tenant = Tenant(
        rate_limit_writes=rate_limit_writes,
        rate_limit_availability=rate_limit_availability,
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


def gateway_for(tenant: Tenant, settings: Settings | None = None, calls_at_once: int = 1) -> CalendarGateway:
    assert tenant.id is not None
    gateway = backends.open_gateway(
        tenant.id,
        tenant.backend,
        backend_options(tenant),
        settings or get_settings(),
        tenant.updated_at.isoformat(),
        calls_at_once,
    )
    return MeteredGateway(gateway)


def tenant_by_name(session: Session, name: str) -> Tenant:
    tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        raise TenantError(f"no tenant named {name!r}")
    return tenant


class TenantDirectory:
    """Tenants as the workers need them, read from the store at most every ``ttl`` seconds per tenant, so a
    changed setting reaches every worker within that time. ``calls_at_once``: placements the worker converges at
    once, which each tenant's connection pool must serve without making them queue."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        calls_at_once: int = 1,
    ) -> None:
        self.engine = engine
        self.calls_at_once = calls_at_once
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
            context = TenantContext(
                name=tenant.name,
                tag_id=tenant.tag_id,
                gateway=gateway_for(tenant, self.settings, self.calls_at_once),
            )
        with self._lock:
            self._cache[tenant_id] = (self.clock(), context)
        return context

"""Tenants, their Exchange connection and their API tokens (shown once, stored hashed)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from sqlmodel import Session, select

from downsync.models import ApiToken, Tenant, utcnow
from downsync.settings import BUSY_TYPES, get_settings

SCOPES = ("availability", "sync")
AUTH_TYPES = ("basic", "ntlm")
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
        raise TenantError("the stored Exchange password cannot be decrypted: was DOWNSYNC_SECRET_KEY changed?") from exc


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_tenant(
    session: Session,
    name: str,
    ews_url: str,
    ews_username: str,
    ews_password: str,
    auth_type: str = "basic",
    build: str = "15.1.2507.6",
    busy_types: str = "Busy,OOF,Tentative,WorkingElsewhere",
    availability_on_error: str = "closed",
) -> Tenant:
    if not name.strip():
        raise TenantError("a tenant needs a name")
    if session.exec(select(Tenant).where(Tenant.name == name)).first() is not None:
        raise TenantError(f"tenant {name!r} exists already")
    if auth_type not in AUTH_TYPES:
        raise TenantError(f"auth type must be one of {', '.join(AUTH_TYPES)}")
    if not ews_url.startswith(("http://", "https://")):
        raise TenantError("the EWS URL must start with http:// or https://")
    parts = build.split(".")
    if not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts):
        raise TenantError("the server build looks like 15.1.2507.6")
    types = [t.strip() for t in busy_types.split(",") if t.strip()]
    if not types or set(types) - set(BUSY_TYPES):
        raise TenantError(f"busy types must be some of {', '.join(BUSY_TYPES)}")
    if availability_on_error not in ("closed", "free"):
        raise TenantError("availability on error must be closed or free")
    tenant = Tenant(
        name=name,
        busy_types=",".join(types),
        availability_on_error=availability_on_error,
        ews_url=ews_url,
        ews_username=ews_username,
        ews_password_encrypted=encrypt_secret(ews_password),
        ews_auth_type=auth_type,
        ews_build=build,
    )
    session.add(tenant)
    session.flush()
    return tenant


def tenant_by_name(session: Session, name: str) -> Tenant:
    tenant = session.exec(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        raise TenantError(f"no tenant named {name!r}")
    return tenant


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

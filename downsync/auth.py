"""Who is calling: bearer tokens, OAuth 2.0 clients with rotating refresh tokens, HMAC-signed requests, and the
legacy Basic login. Secrets and tokens are shown once and stored hashed (a client's secret also encrypted: an HMAC
signature can only be checked with the secret itself). Functions here never commit.

Access and refresh tokens are opaque random strings, not JWTs: every request looks its token up in the store anyway
(so a revoked token is refused at once by every API process), which leaves nothing for a signed token to save.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, update

# Nine columns: more than sqlmodel's select is typed for.
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from sqlmodel.sql.sqltypes import UTCDateTime

from downsync.db import run
from downsync.models import ApiClient, ApiToken, RefreshToken, Tenant, utcnow
from downsync.settings import Settings
from downsync.tenants import TenantError, decrypt_secret, encrypt_secret, tenant_by_name

SCOPES = ("availability", "sync")
TOKEN_PREFIX = "dsk_"
ACCESS_PREFIX = "dsa_"
REFRESH_PREFIX = "dsr_"
CLIENT_PREFIX = "dsc_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _scopes(scopes: list[str]) -> str:
    unknown = set(scopes) - set(SCOPES)
    if unknown or not scopes:
        raise TenantError(f"scopes must be some of {', '.join(SCOPES)}")
    return ",".join(sorted(set(scopes)))


@dataclass(frozen=True)
class Principal:
    tenant_id: int
    tenant_name: str
    scopes: frozenset[str]
    client_id: str | None = None
    method: str = "bearer"  # bearer, oauth, hmac, basic


# --- long-lived bearer tokens ------------------------------------------------------------------------


def create_token(session: Session, tenant_name: str, scopes: list[str]) -> str:
    """A new bearer token for the tenant; the plain token is returned once and only its hash is kept."""
    scope_text = _scopes(scopes)
    tenant = tenant_by_name(session, tenant_name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    assert tenant.id is not None
    session.add(ApiToken(tenant_id=tenant.id, token_hash=hash_token(token), scopes=scope_text))
    session.flush()
    return token


def _token_statement() -> Any:
    """The token, its tenant and its client in one statement, built once: every API request runs it."""
    token_hash: Any = bindparam("token_hash")
    return (
        sa_select(
            *(
                col(column)
                for column in (
                    ApiToken.id,
                    ApiToken.expires_at,
                    ApiToken.last_used_at,
                    ApiToken.scopes,
                    ApiToken.client_pk,
                    Tenant.id,
                    Tenant.name,
                    ApiClient.client_id,
                    ApiClient.revoked_at,
                )
            )
        )
        .join(Tenant, col(Tenant.id) == col(ApiToken.tenant_id))
        .outerjoin(ApiClient, col(ApiClient.id) == col(ApiToken.client_pk))
        .where(col(ApiToken.token_hash) == token_hash, col(ApiToken.revoked_at).is_(None))
    )


_BY_TOKEN = _token_statement()
_TOUCH = (
    update(ApiToken)
    .where(col(ApiToken.id) == bindparam("token_pk"))
    .values(last_used_at=bindparam("now", type_=UTCDateTime()))
)


def authenticate(session: Session | Connection, token: str, now: datetime, touch_after: timedelta) -> Principal | None:
    """The caller a bearer token names, if it is valid now; marks it used (at most every ``touch_after``)."""
    found = run(session, _BY_TOKEN, {"token_hash": hash_token(token)}).first()
    if found is None:
        return None
    token_pk, expires_at, last_used_at, scopes, client_pk, tenant_id, tenant_name, client_id, client_revoked = found
    if expires_at is not None and expires_at <= now:
        return None
    if client_pk is not None and (client_id is None or client_revoked is not None):
        return None
    if last_used_at is None or now - last_used_at >= touch_after:
        run(session, _TOUCH, {"token_pk": token_pk, "now": now})
    return Principal(
        tenant_id=tenant_id,
        tenant_name=tenant_name,
        scopes=frozenset(s for s in scopes.split(",") if s),
        client_id=client_id,
        method="oauth" if client_id else "bearer",
    )


def list_tokens(session: Session, tenant_name: str | None) -> list[tuple[ApiToken, str, str | None]]:
    """Every token (no secrets: its id and the start of its hash), with its tenant and client."""
    query = select(ApiToken, Tenant.name, ApiClient.client_id).join(Tenant, col(Tenant.id) == col(ApiToken.tenant_id))
    query = query.outerjoin(ApiClient, col(ApiClient.id) == col(ApiToken.client_pk))
    if tenant_name:
        query = query.where(col(Tenant.name) == tenant_name)
    return [(t, name, client) for t, name, client in session.exec(query.order_by(col(ApiToken.id)))]


def revoke_token(session: Session, token_id: int, now: datetime) -> bool:
    result = session.exec(
        update(ApiToken).where(col(ApiToken.id) == token_id, col(ApiToken.revoked_at).is_(None)).values(revoked_at=now)
    )
    return bool(result.rowcount)


# --- OAuth 2.0 clients ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewClient:
    client_id: str
    client_secret: str
    refresh_token: str


def _new_refresh(session: Session, client: ApiClient, family: str, now: datetime, settings: Settings) -> str:
    token = REFRESH_PREFIX + secrets.token_urlsafe(32)
    assert client.id is not None
    session.add(
        RefreshToken(
            client_pk=client.id,
            family=family,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + timedelta(days=settings.refresh_token_days),
        )
    )
    return token


def create_client(session: Session, tenant_name: str, scopes: list[str], settings: Settings) -> NewClient:
    """A client of the tenant with its secret and a first refresh token, each shown once."""
    scope_text = _scopes(scopes)
    tenant = tenant_by_name(session, tenant_name)
    assert tenant.id is not None
    secret = secrets.token_urlsafe(32)
    client = ApiClient(
        tenant_id=tenant.id,
        client_id=CLIENT_PREFIX + secrets.token_hex(12),
        secret_hash=hash_token(secret),
        secret_encrypted=encrypt_secret(secret),
        scopes=scope_text,
    )
    session.add(client)
    session.flush()
    refresh = _new_refresh(session, client, uuid.uuid4().hex, utcnow(), settings)
    session.flush()
    return NewClient(client.client_id, secret, refresh)


def list_clients(session: Session, tenant_name: str | None) -> list[tuple[ApiClient, str]]:
    query = select(ApiClient, Tenant.name).join(Tenant, col(Tenant.id) == col(ApiClient.tenant_id))
    if tenant_name:
        query = query.where(col(Tenant.name) == tenant_name)
    return [(c, name) for c, name in session.exec(query.order_by(col(ApiClient.id)))]


def revoke_client(session: Session, client_id: str, now: datetime) -> bool:
    """The client, its refresh tokens and its access tokens stop working at once."""
    client = session.exec(select(ApiClient).where(col(ApiClient.client_id) == client_id)).first()
    if client is None:
        return False
    client.revoked_at = client.revoked_at or now
    session.add(client)
    session.exec(
        update(RefreshToken)
        .where(col(RefreshToken.client_pk) == client.id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    session.exec(
        update(ApiToken)
        .where(col(ApiToken.client_pk) == client.id, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    return True


class OAuthError(Exception):
    """An error of the token endpoint, as RFC 6749 section 5.2 names them."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


def client_by_secret(session: Session, client_id: str, client_secret: str) -> ApiClient:
    client = session.exec(select(ApiClient).where(col(ApiClient.client_id) == client_id)).first()
    if (
        client is None
        or client.revoked_at is not None
        or not hmac.compare_digest(client.secret_hash, hash_token(client_secret))
    ):
        raise OAuthError("invalid_client", "client authentication failed", status=401)
    return client


@dataclass(frozen=True)
class Grant:
    access_token: str
    expires_in: int
    refresh_token: str
    scope: str


def _revoke_family(session: Session, family: str, now: datetime) -> None:
    session.exec(
        update(RefreshToken)
        .where(col(RefreshToken.family) == family, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )
    session.exec(
        update(ApiToken)
        .where(col(ApiToken.family) == family, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=now)
    )


def refresh_grant(
    session: Session, client: ApiClient, refresh_token: str, scope: str | None, settings: Settings, now: datetime
) -> Grant:
    """Exchange a refresh token for an access token and the next refresh token. A refresh token presented a second
    time means it was stolen or replayed: its whole family is revoked (OAuth 2.0 Security BCP, 4.14)."""
    found = session.exec(
        select(RefreshToken).where(col(RefreshToken.token_hash) == hash_token(refresh_token)).with_for_update()
    ).first()
    if found is None or found.client_pk != client.id:
        raise OAuthError("invalid_grant", "the refresh token is not valid for this client")
    if found.revoked_at is not None:
        raise OAuthError("invalid_grant", "the refresh token was revoked")
    if found.used_at is not None:
        _revoke_family(session, found.family, now)
        raise OAuthError("invalid_grant", "the refresh token was used before; its whole family is revoked")
    if found.expires_at <= now:
        raise OAuthError("invalid_grant", "the refresh token expired")
    granted = client.scope_set
    if scope is not None:
        asked = {s for s in scope.replace(",", " ").split() if s}
        if not asked or asked - granted:
            raise OAuthError("invalid_scope", f"the client may ask for {' '.join(sorted(granted))}")
        granted = asked
    found.used_at = now
    session.add(found)
    client.last_used_at = now
    session.add(client)
    access = ACCESS_PREFIX + secrets.token_urlsafe(32)
    assert client.id is not None
    session.add(
        ApiToken(
            tenant_id=client.tenant_id,
            token_hash=hash_token(access),
            scopes=",".join(sorted(granted)),
            client_pk=client.id,
            family=found.family,
            created_at=now,
            expires_at=now + timedelta(seconds=settings.access_token_seconds),
        )
    )
    refresh = _new_refresh(session, client, found.family, now, settings)
    session.flush()
    return Grant(access, settings.access_token_seconds, refresh, " ".join(sorted(granted)))


# --- HMAC-signed requests ------------------------------------------------------------------------------


def canonical(method: str, path: str, query: str, timestamp: str, body: bytes) -> bytes:
    """What a request's signature covers: ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nhex(SHA-256(body))`` (the contract,
    section 6), with ``?QUERY`` left out when the request has no query string."""
    target = f"{path}?{query}" if query else path
    return f"{method.upper()}\n{target}\n{timestamp}\n{hashlib.sha256(body).hexdigest()}".encode()


def sign(secret: str, message: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


class SignatureError(Exception):
    pass


def verify_signature(
    session: Session,
    client_id: str,
    timestamp: str,
    signature: str,
    message: bytes,
    now: datetime,
    skew: float,
    first_seen: Callable[[str], bool],
) -> Principal:
    """The caller of a signed request. ``first_seen`` records the signature and says whether it is new (replays are
    refused); it is asked only once everything else holds, so a forged request cannot burn a real signature."""
    if not timestamp.isdigit():
        raise SignatureError("X-Timestamp must be Unix seconds")
    if abs(now.timestamp() - int(timestamp)) > skew:
        raise SignatureError(f"X-Timestamp is more than {skew:.0f} s away from the server's clock")
    found = session.exec(
        select(ApiClient, Tenant)
        .join(Tenant, col(Tenant.id) == col(ApiClient.tenant_id))
        .where(col(ApiClient.client_id) == client_id)
    ).first()
    if found is None or found[0].revoked_at is not None:
        raise SignatureError("unknown or revoked X-Client-Id")
    client, tenant = found
    expected = sign(decrypt_secret(client.secret_encrypted), message)
    if not hmac.compare_digest(expected, signature.strip()):
        raise SignatureError("X-Signature does not match the request")
    if not first_seen(signature.strip()):
        raise SignatureError("this signature was used before (a replayed request)")
    assert tenant.id is not None
    return Principal(tenant.id, tenant.name, frozenset(client.scope_set), client.client_id, "hmac")


# --- the legacy administrator login ----------------------------------------------------------------------


def legacy_login(session: Session, username: str, password: str, settings: Settings) -> Principal | None:
    """The seeds' administrator login/password, when the deployment turns it on; it acts for one tenant."""
    configured = settings.legacy_basic_password
    if not settings.legacy_basic_enabled or configured is None or not settings.legacy_basic_tenant:
        return None
    same_user = hmac.compare_digest(username.encode(), settings.legacy_basic_username.encode())
    same_password = hmac.compare_digest(password.encode(), configured.get_secret_value().encode())
    if not (same_user and same_password):
        return None
    tenant = tenant_by_name(session, settings.legacy_basic_tenant)
    assert tenant.id is not None
    return Principal(tenant.id, tenant.name, frozenset(SCOPES), None, "basic")

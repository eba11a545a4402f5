"""Who is calling, as the contract's section 6 allows: a bearer token (long-lived, or an OAuth access token), an
HMAC-signed request, or the legacy Basic login when the deployment turns it on; then the scope and the tenant's
rate limit. Every refusal is the contract's error shape, with ``WWW-Authenticate`` on 401."""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import time
from collections.abc import Callable
from datetime import timedelta

import redis
from fastapi import Depends, Request
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBearer, OAuth2
from starlette.concurrency import run_in_threadpool

from api_shim.errors import ApiError
from downsync import auth, observability
from downsync.db import session_scope, transaction
from downsync.models import Tenant, utcnow
from downsync.queue import redis_client
from downsync.ratelimit import limiter
from downsync.settings import Settings, get_settings

log = logging.getLogger(__name__)
CHALLENGE = 'Bearer realm="downsync"'
TOUCH_EVERY = timedelta(seconds=60)  # last_used_at is written at most this often per token

# Declared for the OpenAPI document's security schemes; ``caller`` below reads the headers itself.
SCHEMES = (
    HTTPBearer(
        auto_error=False, description="A tenant's token: from `downsync token create`, or an OAuth access token."
    ),
    OAuth2(
        flows=OAuthFlows(
            clientCredentials=OAuthFlowClientCredentials(
                tokenUrl="/oauth/token",
                scopes={"availability": "read availability and meetings", "sync": "write, and retry jobs"},
            )
        ),
        auto_error=False,
        description="Access tokens from `POST /oauth/token` (form-encoded `grant_type=refresh_token`, "
        "`refresh_token`, `client_id`, `client_secret`); refresh tokens rotate. Send as `Authorization: Bearer`.",
    ),
    APIKeyHeader(
        name="X-Signature",
        scheme_name="HMAC",
        auto_error=False,
        description="A signed request (single-tenant deployments): `X-Client-Id` (a registered client's id), "
        "`X-Timestamp` (Unix seconds, within 5 minutes of the server's clock) and `X-Signature`, the base64 "
        "HMAC-SHA256, keyed by the client secret, of `METHOD\\nPATH?QUERY\\nTIMESTAMP\\nhex(SHA-256(body))` "
        "(`?QUERY` only when there is a query string). A signature is accepted once.",
    ),
    HTTPBasic(auto_error=False, description="The legacy administrator login, when the deployment turns it on"),
)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "ErrorUnauthorized", message, headers={"WWW-Authenticate": CHALLENGE})


def _replay_guard(settings: Settings) -> Callable[[str], bool]:
    """Records a signature for twice the allowed skew; an older one is refused by its timestamp anyway."""

    def first_seen(signature: str) -> bool:
        try:
            key = f"downsync:hmac:{signature}"
            return bool(
                redis_client(settings.redis_url).set(key, 1, nx=True, ex=int(2 * settings.hmac_skew_seconds) + 1)
            )
        except (redis.RedisError, OSError) as exc:
            # Without the store of seen signatures a replay cannot be told from a first request: refuse, unstored.
            raise ApiError(
                503,
                "ErrorServiceUnavailable",
                "signed requests cannot be checked for replays now (Redis does not answer); try again",
                headers={"Retry-After": "5"},
            ) from exc

    return first_seen


def _by_token(token: str) -> auth.Principal | None:
    with transaction() as connection:
        return auth.authenticate(connection, token, utcnow(), TOUCH_EVERY)


def _by_signature(request: Request, body: bytes, settings: Settings) -> auth.Principal:
    headers = request.headers
    message = auth.canonical(request.method, request.url.path, request.url.query, headers.get("X-Timestamp", ""), body)
    with session_scope() as session:
        try:
            return auth.verify_signature(
                session,
                headers.get("X-Client-Id", ""),
                headers.get("X-Timestamp", ""),
                headers.get("X-Signature", ""),
                message,
                utcnow(),
                settings.hmac_skew_seconds,
                _replay_guard(settings),
            )
        except auth.SignatureError as exc:
            raise unauthorized(f"the signed request is refused: {exc}") from exc


def _by_basic(value: str, settings: Settings) -> auth.Principal | None:
    try:
        username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    with session_scope() as session:
        principal = auth.legacy_login(session, username, password, settings)
    if principal is not None:
        log.warning("the legacy Basic login was used (deprecated): move this caller to OAuth or HMAC")
    return principal


# The dependencies that identify the caller. They read the headers themselves: the scheme objects above only
# describe them, and ``api_shim.openapi`` gives every operation depending on one of these all four schemes.
# (As dependencies of their own, FastAPI ran all four on every request, for a document it builds once.)
GUARDS: set[Callable[..., object]] = set()


async def caller(request: Request) -> auth.Principal:
    """Whoever the request's credentials name, with no scope or limit to check."""
    return await identify(request, None, None)


GUARDS.add(caller)


async def identify(request: Request, scope: str | None, family: str | None) -> auth.Principal:
    """The caller, who must hold ``scope`` (if given), counted against the tenant's ``family`` limit (if given).

    Looking the credentials up and counting run in one trip to a worker thread: on a busy API the hops between the
    event loop and the threads cost as much as the work done in them."""
    settings = get_settings()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    find: Callable[[], auth.Principal | None]
    if scheme.lower() == "bearer" and value:
        find, refusal = functools.partial(_by_token, value), "the token is not valid (unknown, expired or revoked)"
    elif scheme.lower() == "basic" and value and settings.legacy_basic_enabled:
        find, refusal = functools.partial(_by_basic, value, settings), "the login or password is not valid"
    elif scheme:
        raise unauthorized("an Authorization: Bearer token (or a signed request) is required")
    elif settings.hmac_enabled and "X-Signature" in request.headers:
        body = await request.body()
        find, refusal = functools.partial(_by_signature, request, body, settings), ""
    else:
        raise unauthorized("an Authorization: Bearer token (or a signed request) is required")
    principal = await run_in_threadpool(_admit, find, refusal, scope, family, settings)
    observability.tenant_name.set(principal.tenant_name)
    return principal


def _admit(
    find: Callable[[], auth.Principal | None], refusal: str, scope: str | None, family: str | None, settings: Settings
) -> auth.Principal:
    principal = find()
    if principal is None:
        raise unauthorized(refusal)
    if scope is not None and scope not in principal.scopes:
        raise ApiError(403, "ErrorForbidden", f"the credentials lack the {scope!r} scope")
    if family is not None:
        limits = _limits_of(principal.tenant_id, family, settings)
        wait = limiter(settings.redis_url).hit(family, principal.tenant_id, limits)
        if wait is not None:
            raise ApiError(
                429,
                "ErrorTooManyRequests",
                f"the tenant's rate limit for {family} ({limits}) is reached; try again in {wait:.0f} s",
                headers={"Retry-After": str(int(wait))},
            )
    return principal


_own_limits: dict[tuple[int, str], tuple[float, str | None]] = {}


def _limits_of(tenant_id: int, family: str, settings: Settings) -> str:
    """The tenant's own limit, read at most every 30 s per tenant, else the settings' default."""
    cached = _own_limits.get((tenant_id, family))
    if cached is None or time.monotonic() - cached[0] > 30:
        with session_scope() as session:
            tenant = session.get(Tenant, tenant_id)
            own = getattr(tenant, f"rate_limit_{family}", None) if tenant else None
        cached = _own_limits[(tenant_id, family)] = (time.monotonic(), own)
    return cached[1] or str(getattr(settings, f"rate_limit_{family}"))


def require(scope: str, family: str | None) -> object:
    """The caller, who must hold ``scope``; each call counts against the tenant's limit for ``family``."""

    async def check(request: Request) -> auth.Principal:
        return await identify(request, scope, family)

    GUARDS.add(check)
    return Depends(check)

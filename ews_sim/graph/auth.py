"""Entra ID as msal sees it: OpenID discovery, the client-credentials token endpoint, and Graph's access tokens.

Clients authenticate with a secret or a certificate (an RS256 or PS256 JWT assertion whose ``x5t`` /
``x5t#S256`` header names the registered certificate). Access tokens are JWTs signed HS256 with a
key private to this simulator, carrying the tenant (``tid``), the app (``appid``), its ``roles``
and ``exp``, as Entra's v1 app-only tokens do.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt

from ews_sim.graph.directory import App, Directory, object_id
from ews_sim.graph.errors import EntraError, GraphError

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
VERIFIED_TOKENS = 1024  # access tokens remembered as verified (Directory.verified)
WWW_AUTHENTICATE = (
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
    f'client_id="{GRAPH_APP_ID}"'
)


def openid_configuration(base: str, tid: str) -> dict[str, Any]:
    """The discovery document; every endpoint is on the simulator's own scheme, host and port."""
    root = f"{base}/{tid}"
    return {
        "token_endpoint": f"{root}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{root}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{root}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }


def unknown_tenant(name: str) -> EntraError:
    return EntraError(
        400,
        "invalid_request",
        90002,
        f"Tenant '{name}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        "correct cloud.",
    )


def _client_from_basic(header: str | None) -> tuple[str | None, str | None]:
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return unquote(user), unquote(password)


def _check_scope(scope: str | None, base: str) -> None:
    if not scope:
        raise EntraError(
            400, "invalid_request", 90014, "The request body must contain the following parameter: 'scope'."
        )
    scopes = scope.split()
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise EntraError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value "
            "with /.default suffixed to the resource identifier (application ID URI).",
        )
    resource = scopes[0][: -len("/.default")].rstrip("/")
    own = urlsplit(base)
    found = urlsplit(resource)
    if resource.lower() in (GRAPH_RESOURCE, GRAPH_APP_ID) or (found.netloc and found.netloc == own.netloc):
        return
    raise EntraError(
        400,
        "invalid_resource",
        500011,
        f"The resource principal named {resource} was not found in the tenant. This can happen if the application has "
        "not been installed by the administrator of the tenant or consented to by any user in the tenant.",
    )


def _verify_assertion(directory: Directory, app: App, assertion: str, tid: str) -> None:
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise EntraError(401, "invalid_client", 50027, f"JWT token is invalid or malformed. ({exc})") from exc
    thumbprint = header.get("x5t#S256") or header.get("x5t")
    registered = app.thumbprints.get("x5t#S256" if header.get("x5t#S256") else "x5t")
    # base64url, with or without the padding (msal sends it).
    if app.public_key is None or not isinstance(thumbprint, str) or thumbprint.rstrip("=") != registered:
        raise EntraError(
            401,
            "invalid_client",
            700027,
            "The certificate with identifier used to sign the client assertion is not registered on application. "
            f"[Reason - The key was not found., Thumbprint of key used by client: '{thumbprint}', "
            f"Configured keys for app Id '{app.client_id}' can be seen in the app registration.]",
        )
    algorithm = header.get("alg")
    if algorithm not in ("RS256", "PS256"):
        raise EntraError(
            401, "invalid_client", 5002738, f"Invalid JWT token. '{algorithm}' is not a supported signature algorithm."
        )
    try:
        claims = jwt.decode(
            assertion,
            app.public_key,  # type: ignore[arg-type]
            algorithms=[algorithm],
            options={"verify_aud": False, "require": ["exp", "iss", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise EntraError(401, "invalid_client", 700024, "Client assertion is not within its valid time range.") from exc
    except jwt.InvalidSignatureError as exc:
        raise EntraError(401, "invalid_client", 700027, "Client assertion failed signature validation.") from exc
    except jwt.PyJWTError as exc:
        raise EntraError(401, "invalid_client", 50027, f"JWT token is invalid or malformed. ({exc})") from exc
    if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
        raise EntraError(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match 'client_id' parameter.",
        )
    path = urlsplit(str(claims.get("aud", ""))).path.strip("/").split("/")
    if len(path) != 4 or path[1:] != ["oauth2", "v2.0", "token"] or directory.tenant(path[0]) != tid:
        raise EntraError(
            401,
            "invalid_client",
            700027,
            f"Client assertion contains an invalid audience '{claims.get('aud')}'; it must be the token endpoint.",
        )


def token_response(
    directory: Directory, tenant_name: str, form: Mapping[str, str], authorization: str | None, base: str
) -> tuple[App, dict[str, Any]]:
    """Answer a token request as Entra does, or raise EntraError with Entra's status and AADSTS code."""
    tid = directory.tenant(tenant_name)
    if tid is None:
        raise unknown_tenant(tenant_name)
    grant = form.get("grant_type")
    if grant != "client_credentials":
        raise EntraError(
            400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant}'."
        )
    basic_id, basic_secret = _client_from_basic(authorization)
    client_id = form.get("client_id") or basic_id
    if not client_id:
        raise EntraError(
            400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
        )
    app = directory.app(tid, client_id)
    if app is None:
        raise EntraError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. "
            "This can happen if the application has not been installed by the administrator of the tenant or "
            "consented to by any user in the tenant. You may have sent your authentication request to the wrong "
            "tenant.",
        )
    _check_scope(form.get("scope"), base)
    secret = form.get("client_secret") or basic_secret
    if form.get("client_assertion_type") or form.get("client_assertion"):
        if form.get("client_assertion_type") != JWT_BEARER or not form.get("client_assertion"):
            raise EntraError(
                400, "invalid_request", 90014, f"client_assertion_type must be '{JWT_BEARER}' with a client_assertion."
            )
        _verify_assertion(directory, app, form["client_assertion"], tid)
        method = "2"
    elif secret is not None:
        if app.client_secret is None or not hmac.compare_digest(secret.encode(), app.client_secret.encode()):
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
                f"value, not the client secret ID, for a secret added to app '{app.client_id}'.",
            )
        method = "1"
    else:
        raise EntraError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    token, lifetime = issue(directory, app, method)
    return app, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}


def issue(directory: Directory, app: App, method: str = "1") -> tuple[str, int]:
    now = int(time.time())
    lifetime = directory.token_lifetime
    principal = object_id("service-principal", f"{app.tenant_id}/{app.client_id}")
    claims: dict[str, Any] = {
        "aud": GRAPH_RESOURCE,
        "iss": f"https://sts.windows.net/{app.tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "app_displayname": app.client_id,
        "appid": app.client_id,
        "appidacr": method,
        "idp": f"https://sts.windows.net/{app.tenant_id}/",
        "idtyp": "app",
        "oid": principal,
        "sub": principal,
        "tid": app.tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "1.0",
    }
    if app.roles:
        # Entra leaves the claim out when no application permission was consented.
        claims["roles"] = list(app.roles)
    token = jwt.encode(claims, directory.signing_key, algorithm="HS256", headers={"kid": "ews-sim"})
    return token, lifetime


@dataclass
class Caller:
    app: App
    claims: dict[str, Any]

    @property
    def roles(self) -> list[str]:
        return list(self.claims.get("roles") or [])


def authenticate(directory: Directory, authorization: str | None) -> Caller:
    """The app behind a Graph request's bearer token, or 401 InvalidAuthenticationToken as Graph answers."""
    headers = {"WWW-Authenticate": WWW_AUTHENTICATE}
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.", headers)
    # Verifying the JWT was a fifth of a getSchedule's cost here, paid again for every request with the same token.
    # A token that passed once passes again until its exp (its signature, audience and claims cannot change, and
    # iat/nbf stay in the past), so only exp is checked again; an expired one goes through jwt.decode for its error.
    claims = directory.verified.get(token)
    if claims is None or int(claims["exp"]) <= time.time():
        directory.verified.pop(token, None)
        try:
            claims = jwt.decode(
                token,
                directory.signing_key,
                algorithms=["HS256"],
                audience=[GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID],
                options={"require": ["exp", "tid", "appid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise GraphError(
                401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", headers
            ) from exc
        except jwt.PyJWTError as exc:
            raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.", headers) from exc
        if len(directory.verified) >= VERIFIED_TOKENS:
            directory.verified.clear()  # bounded: clients that fetch token after token cannot grow it for ever
        directory.verified[token] = claims
    app = directory.app(str(claims["tid"]), str(claims["appid"]))
    if app is None:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.", headers
        )
    return Caller(app=app, claims=claims)

"""The refresh-token grant: authenticate the client, rotate its refresh token, issue an access token."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs, unquote_plus

from sqlmodel import Session

from downsync import auth
from downsync.models import utcnow
from downsync.settings import Settings


def form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; a parameter given twice is refused (RFC 6749, 3.2)."""
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise auth.OAuthError("invalid_request", f"the body is not form-encoded: {exc}") from exc
    repeated = sorted(k for k, v in parsed.items() if len(v) > 1)
    if repeated:
        raise auth.OAuthError("invalid_request", f"parameters given more than once: {', '.join(repeated)}")
    return {k: v[0] for k, v in parsed.items()}


def client_credentials(fields: dict[str, str], authorization: str | None) -> tuple[str, str]:
    """The client's id and secret, from HTTP Basic (RFC 6749, 2.3.1) or the body; not both."""
    if authorization and authorization.lower().startswith("basic "):
        if "client_secret" in fields:
            raise auth.OAuthError("invalid_request", "client credentials given twice (header and body)")
        try:
            pair = base64.b64decode(authorization[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise auth.OAuthError("invalid_client", "the Basic credentials cannot be read", status=401) from exc
        client_id, _, secret = pair.partition(":")
        return unquote_plus(client_id), unquote_plus(secret)
    if not fields.get("client_id") or not fields.get("client_secret"):
        raise auth.OAuthError("invalid_client", "client_id and client_secret are required", status=401)
    return fields["client_id"], fields["client_secret"]


def token(session: Session, body: bytes, authorization: str | None, settings: Settings) -> auth.Grant:
    fields = form(body)
    if fields.get("grant_type") != "refresh_token":
        if not fields.get("grant_type"):
            raise auth.OAuthError("invalid_request", "grant_type is required")
        raise auth.OAuthError("unsupported_grant_type", "only grant_type=refresh_token is supported")
    if not fields.get("refresh_token"):
        raise auth.OAuthError("invalid_request", "refresh_token is required")
    client_id, secret = client_credentials(fields, authorization)
    client = auth.client_by_secret(session, client_id, secret)
    return auth.refresh_grant(session, client, fields["refresh_token"], fields.get("scope"), settings, utcnow())

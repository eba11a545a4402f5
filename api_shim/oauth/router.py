"""``POST /oauth/token``: the OAuth 2.0 refresh-token grant (the contract, section 6)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api_shim.deps import SessionDep, SettingsDep
from api_shim.oauth import service
from api_shim.oauth.schemas import FORM, TokenError, TokenResponse
from downsync.auth import OAuthError

router = APIRouter(tags=["oauth"])
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
CODES = {"invalid_client": "ErrorUnauthorized", "invalid_grant": "ErrorUnauthorized"}


def _refused(error: OAuthError, basic: bool) -> JSONResponse:
    headers = dict(NO_STORE)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="downsync"' if basic else 'Bearer realm="downsync"'
    body = {
        "error": error.error,
        "error_description": error.description,
        "errorCode": CODES.get(error.error, "ErrorInvalidRequest"),
        "message": error.description,
        "details": [],
    }
    return JSONResponse(body, status_code=error.status, headers=headers)


@router.post(
    "/oauth/token",
    response_model=TokenResponse,
    responses={400: {"model": TokenError, "description": "RFC 6749 errors"}, 401: {"model": TokenError}},
    openapi_extra=FORM,
    summary="Exchange a refresh token for an access token and the next refresh token",
    description=(
        "Form-encoded `grant_type=refresh_token`, `refresh_token`, `client_id`, `client_secret` (or the client's "
        "id and secret by HTTP Basic). Each refresh token works once; the answer carries the next one. A refresh "
        "token used twice revokes its whole family, access tokens included. Access tokens expire after "
        "`expires_in` seconds."
    ),
)
async def token(request: Request, session: SessionDep, settings: SettingsDep) -> JSONResponse:
    body = await request.body()
    authorization = request.headers.get("Authorization")
    try:
        grant = await run_in_threadpool(service.token, session, body, authorization, settings)
        await run_in_threadpool(session.commit)
    except OAuthError as error:
        # A reused refresh token revoked its family: that must stick although the grant is refused.
        await run_in_threadpool(session.commit)
        return _refused(error, basic=bool(authorization and authorization.lower().startswith("basic ")))
    payload = TokenResponse(
        access_token=grant.access_token,
        expires_in=grant.expires_in,
        refresh_token=grant.refresh_token,
        scope=grant.scope,
    )
    return JSONResponse(payload.model_dump(), headers=NO_STORE)

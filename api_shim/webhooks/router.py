"""``/api/salesforce/scheduler/webhooks``: register callback URLs, rotate their secrets, read the delivery log and
send a delivery again. Changes need the ``sync`` scope; a tenant sees and touches only its own webhooks."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from api_shim.deps import PrincipalDep, SessionDep, SettingsDep
from api_shim.security import require
from api_shim.webhooks import service
from api_shim.webhooks.schemas import (
    DeliveryPage,
    DeliveryView,
    WebhookCreate,
    WebhookList,
    WebhookView,
    WebhookWithSecret,
)
from downsync.auth import Principal

router = APIRouter(prefix=service.WEBHOOKS_PATH, tags=["webhooks"])
# Managing webhooks is rare and not a write to calendars: the sync scope, no share of the tenant's write limit.
AdminPrincipal = Annotated[Principal, require("sync", None)]
DeliveryState = Literal["pending", "delivered", "failed"]
SIGNATURE = (
    ' Deliveries are POSTed with `X-Downsync-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">` (a `v1` '
    "per live secret), `X-Downsync-Event` (`job.final` or `result.final`), `X-Downsync-Delivery` (the same on every "
    "attempt of one delivery) and, for results, `X-Downsync-Mailbox`; the body is the job as `GET /jobs/{id}` shows it."
)


@router.post(
    "",
    response_model=WebhookWithSecret,
    status_code=201,
    responses={
        409: {"description": "The tenant has as many webhooks as it may (25)."},
        422: {"description": "The body is invalid, or the URL may not be a receiver (`details` names `url`)."},
    },
    summary="Register a callback URL; its signing secret is answered this once",
    description="Told when each of the tenant's jobs becomes final (and, with `eachResult`, each mailbox result). "
    "https only in production, and never a private, loopback or link-local address (422)." + SIGNATURE,
)
async def create(
    body: WebhookCreate, session: SessionDep, principal: AdminPrincipal, settings: SettingsDep
) -> WebhookWithSecret:
    # The URL's host is resolved (blocking): off the event loop.
    created = await run_in_threadpool(service.create, session, principal, body.url, body.eachResult, settings)
    session.commit()
    return created


@router.get("", response_model=WebhookList, summary="The tenant's webhooks (never their secrets)")
def list_webhooks(session: SessionDep, principal: PrincipalDep) -> WebhookList:
    return service.listing(session, principal)


@router.get("/{webhook_id}", response_model=WebhookView, summary="One webhook (never its secrets)")
def get_webhook(webhook_id: str, session: SessionDep, principal: PrincipalDep) -> WebhookView:
    return service.get(session, principal, webhook_id)


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook, its secrets and its delivery log")
def delete_webhook(webhook_id: str, session: SessionDep, principal: AdminPrincipal) -> Response:
    service.delete(session, principal, webhook_id)
    session.commit()
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate",
    response_model=WebhookWithSecret,
    summary="Issue a new signing secret; the previous one still signs for a grace period",
    description="Deliveries carry a `v1` for each live secret until the previous one expires (`graceSeconds`, "
    "default the deployment's setting, 24 h) or is retired with `DELETE .../previous-secret`.",
)
def rotate(
    webhook_id: str,
    session: SessionDep,
    principal: AdminPrincipal,
    settings: SettingsDep,
    grace_seconds: Annotated[float | None, Query(alias="graceSeconds", ge=0, le=30 * 86400)] = None,
) -> WebhookWithSecret:
    rotated = service.rotate(session, principal, webhook_id, grace_seconds, settings)
    session.commit()
    return rotated


@router.delete(
    "/{webhook_id}/previous-secret",
    response_model=WebhookView,
    summary="Stop signing with the previous secret now (the receiver has the new one)",
)
def retire_previous(webhook_id: str, session: SessionDep, principal: AdminPrincipal) -> WebhookView:
    retired = service.retire_previous(session, principal, webhook_id)
    session.commit()
    return retired


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    summary="The delivery log, newest first: every attempt with its status code, error and timing",
)
def deliveries(
    webhook_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    state: DeliveryState | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> DeliveryPage:
    return service.deliveries(session, principal, webhook_id, state, cursor, limit)


@router.get(
    "/{webhook_id}/deliveries/{delivery_id}", response_model=DeliveryView, summary="One delivery and its attempts"
)
def delivery(webhook_id: str, delivery_id: str, session: SessionDep, principal: PrincipalDep) -> DeliveryView:
    return service.delivery(session, principal, webhook_id, delivery_id)


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryView,
    status_code=202,
    summary="Send a delivery again now (delivered, failed or pending), with a fresh retry window",
)
def redeliver(webhook_id: str, delivery_id: str, session: SessionDep, principal: AdminPrincipal) -> DeliveryView:
    again = service.redeliver(session, principal, webhook_id, delivery_id)
    session.commit()
    return again

"""The webhook endpoints' work: a tenant's own subscriptions only (another tenant's answer 404, as if absent), URL
refusals in the contract's error shape, and the delivery log."""

from __future__ import annotations

from sqlmodel import Session

from api_shim.errors import ApiError
from api_shim.security import unauthorized
from api_shim.webhooks.schemas import DeliveryPage, DeliveryView, WebhookList, WebhookView, WebhookWithSecret
from downsync.auth import Principal
from downsync.models import WebhookDelivery, WebhookSubscription, utcnow
from downsync.settings import Settings
from downsync.webhooks import service as outbox
from downsync.webhooks import subscriptions
from downsync.webhooks.urls import UrlRefused

WEBHOOKS_PATH = "/api/salesforce/scheduler/webhooks"


def refused(field: str, problem: str) -> ApiError:
    return ApiError(422, "ErrorInvalidRequest", f"{field} {problem}", [{"field": field, "problem": problem}])


def _own(session: Session, principal: Principal, webhook_id: str) -> WebhookSubscription:
    found = subscriptions.get(session, principal.tenant_id, webhook_id)
    if found is None:
        raise ApiError(404, "ErrorWebhookNotFound", f"no webhook {webhook_id}")
    return found


def view(session: Session, subscription: WebhookSubscription) -> WebhookView:
    client_id = subscriptions.client_ids(session, [subscription]).get(subscription.client_pk or 0)
    return WebhookView.of(subscription, client_id, subscriptions.previous_live(subscription, utcnow()))


def with_secret(session: Session, subscription: WebhookSubscription, secret: str) -> WebhookWithSecret:
    return WebhookWithSecret(**view(session, subscription).model_dump(), secret=secret)


def create(
    session: Session, principal: Principal, url: str, each_result: bool, settings: Settings
) -> WebhookWithSecret:
    """A subscription of the caller's tenant; a client's credentials make it that client's (stopped if the client
    is revoked)."""
    try:
        client = (
            subscriptions.client_of(session, principal.tenant_id, principal.client_id) if principal.client_id else None
        )
        subscription, secret = subscriptions.create(
            session, principal.tenant_id, url, settings, utcnow(), client=client, each_result=each_result
        )
    except UrlRefused as exc:
        raise refused("url", str(exc)) from None
    except subscriptions.TooMany as exc:
        raise ApiError(409, "ErrorTooManyWebhooks", str(exc)) from None
    except subscriptions.SubscriptionError as exc:  # the caller's client revoked meanwhile
        raise unauthorized(str(exc)) from None
    return with_secret(session, subscription, secret)


def listing(session: Session, principal: Principal) -> WebhookList:
    now = utcnow()
    return WebhookList(
        webhooks=[
            WebhookView.of(row.subscription, row.client_id, subscriptions.previous_live(row.subscription, now))
            for row in subscriptions.listing(session, tenant_id=principal.tenant_id)
        ]
    )


def get(session: Session, principal: Principal, webhook_id: str) -> WebhookView:
    return view(session, _own(session, principal, webhook_id))


def delete(session: Session, principal: Principal, webhook_id: str) -> None:
    subscriptions.remove(session, _own(session, principal, webhook_id))


def rotate(
    session: Session, principal: Principal, webhook_id: str, grace_seconds: float | None, settings: Settings
) -> WebhookWithSecret:
    subscription = _own(session, principal, webhook_id)
    grace = settings.webhook_secret_grace_seconds if grace_seconds is None else grace_seconds
    secret = subscriptions.rotate(session, subscription, utcnow(), grace)
    return with_secret(session, subscription, secret)


def retire_previous(session: Session, principal: Principal, webhook_id: str) -> WebhookView:
    subscription = _own(session, principal, webhook_id)
    subscriptions.retire_previous(session, subscription)
    return view(session, subscription)


def deliveries(
    session: Session, principal: Principal, webhook_id: str, state: str | None, cursor: str | None, limit: int
) -> DeliveryPage:
    subscription = _own(session, principal, webhook_id)
    try:
        page = outbox.deliveries(session, subscription.id, state, cursor, limit)
    except outbox.CursorError as exc:
        raise refused("cursor", str(exc)) from None
    attempts = outbox.attempts_of(session, [d.id for d in page.deliveries])
    return DeliveryPage(
        deliveries=[DeliveryView.of(d, attempts[d.id]) for d in page.deliveries], nextCursor=page.next_cursor
    )


def _delivery(session: Session, principal: Principal, webhook_id: str, delivery_id: str) -> WebhookDelivery:
    subscription = _own(session, principal, webhook_id)
    found = outbox.delivery(session, subscription.id, delivery_id)
    if found is None:
        raise ApiError(404, "ErrorDeliveryNotFound", f"no delivery {delivery_id} of webhook {webhook_id}")
    return found


def delivery(session: Session, principal: Principal, webhook_id: str, delivery_id: str) -> DeliveryView:
    found = _delivery(session, principal, webhook_id, delivery_id)
    return DeliveryView.of(found, outbox.attempts_of(session, [found.id])[found.id])


def redeliver(session: Session, principal: Principal, webhook_id: str, delivery_id: str) -> DeliveryView:
    found = outbox.redeliver(session, _delivery(session, principal, webhook_id, delivery_id), utcnow())
    return DeliveryView.of(found, outbox.attempts_of(session, [found.id])[found.id])

"""Registering callback URLs and keeping their secrets: created, listed, rotated, retired, deleted.

A secret is shown once (on creation and on each rotation) and stored encrypted with the settings' secret key, as
the tenants' Exchange credentials are: a signature can only be made with the secret itself. Functions here never
commit and never log a secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, func, select

from downsync.models import ApiClient, Tenant, WebhookAttempt, WebhookDelivery, WebhookSubscription
from downsync.settings import Settings
from downsync.tenants import decrypt_secret, encrypt_secret
from downsync.webhooks import urls
from downsync.webhooks.signing import new_secret

ID_PREFIX = "wh_"
# A tenant registering hundreds of receivers is a mistake (or an attempt to fan out the service's requests).
MAX_PER_TENANT = 25


class SubscriptionError(ValueError):
    """A registration refused for a reason other than its URL (which raises ``urls.UrlRefused``)."""


class TooMany(SubscriptionError):
    """The tenant has as many webhooks as it may."""


def check_url(url: str, settings: Settings, resolver: urls.Resolver | None = None) -> urls.Target:
    """The URL as the settings allow it (https in production; private addresses only when allowed)."""
    return urls.check(
        url,
        require_https=settings.environment == "production",
        allow_private=settings.webhook_allow_private,
        resolver=resolver,
    )


def client_of(session: Session, tenant_id: int, client_id: str) -> ApiClient:
    """The tenant's live client with this id; another tenant's is as unknown as none."""
    found = session.exec(
        select(ApiClient).where(col(ApiClient.client_id) == client_id, col(ApiClient.tenant_id) == tenant_id)
    ).first()
    if found is None or found.revoked_at is not None:
        raise SubscriptionError(f"the tenant has no live client {client_id}")
    return found


def create(
    session: Session,
    tenant_id: int,
    url: str,
    settings: Settings,
    now: datetime,
    *,
    client: ApiClient | None = None,
    each_result: bool = False,
    resolver: urls.Resolver | None = None,
) -> tuple[WebhookSubscription, str]:
    """A new subscription and its secret (returned once, stored encrypted). ``urls.UrlRefused`` says why a URL may not
    be one."""
    check_url(url, settings, resolver)
    count = session.exec(
        select(func.count()).select_from(WebhookSubscription).where(WebhookSubscription.tenant_id == tenant_id)
    ).one()
    if count >= MAX_PER_TENANT:
        raise TooMany(f"a tenant has at most {MAX_PER_TENANT} webhooks; delete one first")
    secret = new_secret()
    subscription = WebhookSubscription(
        id=ID_PREFIX + secrets.token_hex(12),
        tenant_id=tenant_id,
        client_pk=client.id if client is not None else None,
        url=url,
        each_result=each_result,
        secret_encrypted=encrypt_secret(secret),
        # Only results that become final from now on are told about.
        results_scanned_at=now,
        created_at=now,
    )
    session.add(subscription)
    session.flush()
    return subscription, secret


def get(session: Session, tenant_id: int | None, subscription_id: str) -> WebhookSubscription | None:
    """The subscription, if it is this tenant's (any tenant's when ``tenant_id`` is None: the command line)."""
    found = session.get(WebhookSubscription, subscription_id)
    if found is None or (tenant_id is not None and found.tenant_id != tenant_id):
        return None
    return found


@dataclass(frozen=True)
class Listed:
    subscription: WebhookSubscription
    tenant: str
    client_id: str | None


def listing(session: Session, tenant_id: int | None = None, tenant_name: str | None = None) -> list[Listed]:
    query = (
        select(WebhookSubscription, Tenant.name, ApiClient.client_id)
        .join(Tenant, col(Tenant.id) == col(WebhookSubscription.tenant_id))
        .outerjoin(ApiClient, col(ApiClient.id) == col(WebhookSubscription.client_pk))
    )
    if tenant_id is not None:
        query = query.where(col(WebhookSubscription.tenant_id) == tenant_id)
    if tenant_name is not None:
        query = query.where(col(Tenant.name) == tenant_name)
    rows = session.exec(query.order_by(col(WebhookSubscription.created_at), col(WebhookSubscription.id)))
    return [Listed(sub, name, client_id) for sub, name, client_id in rows]


def client_ids(session: Session, subscriptions: Sequence[WebhookSubscription]) -> dict[int, str]:
    pks = {s.client_pk for s in subscriptions if s.client_pk is not None}
    if not pks:
        return {}
    rows = session.exec(select(ApiClient.id, ApiClient.client_id).where(col(ApiClient.id).in_(pks)))
    return {pk: client_id for pk, client_id in rows if pk is not None}


def previous_live(subscription: WebhookSubscription, now: datetime) -> bool:
    expires = subscription.previous_expires_at
    return subscription.previous_secret_encrypted is not None and expires is not None and expires > now


def live_secrets(subscription: WebhookSubscription, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, then the previous one during its grace."""
    found = [decrypt_secret(subscription.secret_encrypted)]
    if previous_live(subscription, now):
        assert subscription.previous_secret_encrypted is not None
        found.append(decrypt_secret(subscription.previous_secret_encrypted))
    return found


def rotate(session: Session, subscription: WebhookSubscription, now: datetime, grace_seconds: float) -> str:
    """A new current secret (returned once); the one it replaces still signs for ``grace_seconds``. Only two are
    ever live: a previous secret still in its grace is dropped by a second rotation."""
    secret = new_secret()
    subscription.previous_secret_encrypted = subscription.secret_encrypted
    subscription.previous_expires_at = now + timedelta(seconds=grace_seconds)
    subscription.secret_encrypted = encrypt_secret(secret)
    subscription.rotated_at = now
    session.add(subscription)
    session.flush()
    return secret


def retire_previous(session: Session, subscription: WebhookSubscription) -> bool:
    """Stop signing with the previous secret now (the receiver has the new one); False when none was live."""
    had = subscription.previous_secret_encrypted is not None
    subscription.previous_secret_encrypted = None
    subscription.previous_expires_at = None
    session.add(subscription)
    session.flush()
    return had


def remove(session: Session, subscription: WebhookSubscription) -> None:
    """The subscription, its secrets and its delivery log are gone; a delivery being sent meanwhile is not recorded."""
    delivery_ids = select(WebhookDelivery.id).where(col(WebhookDelivery.subscription_id) == subscription.id)
    session.exec(delete(WebhookAttempt).where(col(WebhookAttempt.delivery_id).in_(delivery_ids)))
    session.exec(delete(WebhookDelivery).where(col(WebhookDelivery.subscription_id) == subscription.id))
    session.exec(delete(WebhookSubscription).where(col(WebhookSubscription.id) == subscription.id))
    session.expunge(subscription)

"""Webhook subscriptions, their secrets (shown once) and their delivery log."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from api_shim.fields import Bool, format_time
from downsync.models import WebhookAttempt, WebhookDelivery, WebhookSubscription
from downsync.webhooks.urls import MAX_URL_LENGTH, UrlRefused, check_shape

# What the text of a URL may be (the schema says exactly this); whether it may be a receiver (https in production, a
# public address) is checked against the settings and DNS, and refused with 422 naming the field ``url``.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\x00-\x20\x7f/?#@]+([/?][^\x00-\x20\x7f#]*)?$"
_URL = re.compile(URL_PATTERN)


def _url(value: Any) -> str:
    """The pattern's verdict, with a reason a caller can act on instead of the pattern itself."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value) > MAX_URL_LENGTH:
        raise ValueError(f"is longer than {MAX_URL_LENGTH} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be Unicode text (it holds a lone surrogate)") from None
    if not _URL.match(value):
        try:
            check_shape(value, require_https=False)
        except UrlRefused as exc:
            raise ValueError(str(exc)) from None
        raise ValueError("must be an http or https URL: scheme://host[:port][/path][?query]")
    return value


Url = Annotated[
    str,
    BeforeValidator(_url),
    WithJsonSchema({"type": "string", "maxLength": MAX_URL_LENGTH, "pattern": URL_PATTERN}),
]


class WebhookCreate(BaseModel):
    # Unknown fields are ignored so newer callers keep working.
    # No example: a URL is only valid where its host resolves, which no example can promise.
    model_config = ConfigDict(extra="ignore")

    url: Url
    eachResult: Bool = False


class SecretView(BaseModel):
    """A live signing secret, without the secret: when it stops signing (null: while it is the current one)."""

    current: bool
    expiresAt: str | None


class WebhookView(BaseModel):
    id: str
    url: str
    eachResult: bool
    clientId: str | None
    createdAt: str
    rotatedAt: str | None
    secrets: list[SecretView]

    @classmethod
    def of(cls, subscription: WebhookSubscription, client_id: str | None, previous_live: bool) -> WebhookView:
        secrets = [SecretView(current=True, expiresAt=None)]
        if previous_live and subscription.previous_expires_at is not None:
            secrets.append(SecretView(current=False, expiresAt=format_time(subscription.previous_expires_at)))
        return cls(
            id=subscription.id,
            url=subscription.url,
            eachResult=subscription.each_result,
            clientId=client_id,
            createdAt=format_time(subscription.created_at),
            rotatedAt=format_time(subscription.rotated_at) if subscription.rotated_at else None,
            secrets=secrets,
        )


class WebhookWithSecret(WebhookView):
    """The subscription and its new secret: shown this once, stored encrypted."""

    secret: str


class WebhookList(BaseModel):
    webhooks: list[WebhookView]


class AttemptView(BaseModel):
    number: int
    startedAt: str
    durationMs: int
    statusCode: int | None
    error: str | None


class DeliveryView(BaseModel):
    id: str
    event: str
    jobId: str
    email: str | None
    state: str
    attempts: int
    createdAt: str
    nextAttemptAt: str | None
    deliveredAt: str | None
    lastStatusCode: int | None
    lastError: str | None
    attemptLog: list[AttemptView]

    @classmethod
    def of(cls, row: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryView:
        return cls(
            id=row.id,
            event=row.event,
            jobId=row.job_id,
            email=row.email,
            state=row.state,
            attempts=row.attempts,
            createdAt=format_time(row.created_at),
            nextAttemptAt=format_time(row.due_at) if row.due_at and row.state == "pending" else None,
            deliveredAt=format_time(row.delivered_at) if row.delivered_at else None,
            lastStatusCode=row.last_status,
            lastError=row.last_error,
            attemptLog=[
                AttemptView(
                    number=a.number,
                    startedAt=format_time(a.started_at),
                    durationMs=a.duration_ms,
                    statusCode=a.status_code,
                    error=a.error,
                )
                for a in attempts
            ],
        )


class DeliveryPage(BaseModel):
    deliveries: list[DeliveryView]
    nextCursor: str | None

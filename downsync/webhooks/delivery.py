"""Sending deliveries: the loop that hands due ones to the workers, and the task that sends one.

As with placements, the store says what is due and the broker only carries the news. Every worker runs a delivery
loop beside its dispatcher: each tick it writes the deliveries found by scanning, takes the due ones no live lease
holds and no recent message covers (``FOR UPDATE SKIP LOCKED``) and enqueues a ``downsync.deliver`` task for each.
The task claims its delivery with a lease (a conditional ``UPDATE``), so two workers never send one at once, signs
it, POSTs it, and records the attempt. A receiver's 2xx ends it; anything else, or no answer, is retried with
exponential back-off until the retry window ends. A worker killed mid-delivery leaves its lease to expire; the
delivery is then due again, so none is lost (a receiver may see one twice: ``X-Downsync-Delivery`` tells).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

import httpx
from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError
from sqlalchemy import Engine, func, update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, or_, select

from downsync.core.converge import TenantUnusable
from downsync.db import get_engine, session_scope
from downsync.models import WebhookAttempt, WebhookDelivery, WebhookSubscription, utcnow
from downsync.settings import Settings, get_settings
from downsync.webhooks import service, signing, subscriptions, urls

log = logging.getLogger(__name__)
DELIVER_TASK = "downsync.deliver"
USER_AGENT = "downsync-webhooks/1"
# What a failed attempt keeps of the receiver's answer, for the delivery log.
ANSWER_CHARS = 300


def lease_seconds(settings: Settings) -> float:
    """Longer than one attempt can last: resolving, connecting, sending and awaiting the answer are each bounded by
    the timeout; the 2 s cover clocks a little apart."""
    return 4 * settings.webhook_timeout_seconds + 2


def backoff(
    attempts: int, settings: Settings, retry_after: float | None = None, rng: random.Random | None = None
) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base * 2^(n-1), at most the maximum, lengthened
    by up to a fifth (so receivers coming back are not hit by every delivery at once, and never sooner than the
    schedule says); a receiver's ``Retry-After`` wins when it is longer (up to the maximum)."""
    delay = min(settings.webhook_retry_max_seconds, settings.webhook_retry_base_seconds * 2 ** max(attempts - 1, 0))
    delay *= 1 + (rng or random).random() * 0.2
    if retry_after is not None:
        delay = max(delay, min(retry_after, settings.webhook_retry_max_seconds))
    return delay


def take_due(session: Session, now: datetime, redeliver_seconds: float, limit: int) -> list[str]:
    """Due deliveries that nobody holds and no recent message covers, marked sent (two loops never take one)."""
    query = (
        select(WebhookDelivery.id)
        .where(
            col(WebhookDelivery.due_at) <= now,
            or_(col(WebhookDelivery.lease_expires_at).is_(None), col(WebhookDelivery.lease_expires_at) < now),
            or_(
                col(WebhookDelivery.enqueued_at).is_(None),
                col(WebhookDelivery.enqueued_at) < now - timedelta(seconds=redeliver_seconds),
            ),
        )
        .order_by(col(WebhookDelivery.due_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list(session.exec(query).all())
    if ids:
        session.exec(update(WebhookDelivery).where(col(WebhookDelivery.id).in_(ids)).values(enqueued_at=now))
    return ids


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    token: str
    subscription_id: str
    event: str
    email: str | None
    body: str
    attempts: int


def claim(session: Session, delivery_id: str, token: str, now: datetime, lease: float) -> Claim | None:
    """The delivery under this worker's lease, if it is due and nobody else holds it."""
    row = session.exec(
        update(WebhookDelivery)
        .where(
            col(WebhookDelivery.id) == delivery_id,
            col(WebhookDelivery.state) == "pending",
            col(WebhookDelivery.due_at) <= now,
            or_(col(WebhookDelivery.lease_expires_at).is_(None), col(WebhookDelivery.lease_expires_at) < now),
        )
        .values(
            lease_token=token,
            lease_expires_at=now + timedelta(seconds=lease),
            enqueued_at=None,
            retry_from=func.coalesce(col(WebhookDelivery.retry_from), now),
        )
        .returning(
            col(WebhookDelivery.subscription_id),
            col(WebhookDelivery.event),
            col(WebhookDelivery.email),
            col(WebhookDelivery.body),
            col(WebhookDelivery.attempts),
        )
    ).first()
    if row is None:
        return None
    subscription_id, event, email, body, attempts = row
    return Claim(delivery_id, token, subscription_id, event, email, body, attempts)


@dataclass(frozen=True)
class Answer:
    """What one attempt came to: the receiver's status (None when it never answered) or why it failed."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def header_text(value: str) -> str:
    """An address as a header can carry it (printable ASCII as it is, the rest percent-encoded as UTF-8)."""
    return quote(value, safe="".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%"))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def post(target: urls.Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST to the address that was checked (not a second lookup's), naming the host in ``Host`` and TLS's SNI."""
    url = httpx.URL(target.url)
    address = target.addresses[0]
    pinned = url.copy_with(host=str(address))
    extensions = {"sni_hostname": url.raw_host.decode("ascii")} if target.scheme == "https" else {}
    headers = {**headers, "Host": url.netloc.decode("ascii")}
    try:
        # No proxies from the environment (they would reach what the address check refused), no redirects (a 3xx
        # is not a 2xx: it is retried, and the URL should be fixed), no pooled connection shared between hosts.
        with (
            httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False) as client,
            client.stream("POST", pinned, content=body, headers=headers, extensions=extensions) as response,
        ):
            if 200 <= response.status_code < 300:
                return Answer(response.status_code)
            text = b""
            for chunk in response.iter_bytes():
                text += chunk
                if len(text) >= ANSWER_CHARS:
                    break
            answer = text[:ANSWER_CHARS].decode("utf-8", "replace").strip()
            error = f"HTTP {response.status_code}" + (f": {answer}" if answer else "")
            return Answer(response.status_code, error, _retry_after(response))
    except httpx.TimeoutException as exc:
        return Answer(None, f"no answer within {timeout:g} s ({type(exc).__name__})")
    except httpx.HTTPError as exc:
        return Answer(None, f"{type(exc).__name__}: {exc}"[:ANSWER_CHARS])


Poster = Callable[[urls.Target, bytes, dict[str, str], float], Answer]


@dataclass(frozen=True)
class Sent:
    """What ``deliver`` did: idle (not due, or someone else's), delivered, retry, failed (window over), gone."""

    status: str
    answer: Answer | None = None


def record(
    session: Session,
    claimed: Claim,
    answer: Answer,
    started: datetime,
    duration: float,
    now: datetime,
    settings: Settings,
    rng: random.Random | None = None,
) -> str:
    """Log the attempt and decide what follows. A 2xx delivers it whoever holds the lease now; a failure reschedules
    it only while the lease is still this worker's (else the new holder decides)."""
    row = session.exec(
        select(WebhookDelivery).where(WebhookDelivery.id == claimed.delivery_id).with_for_update()
    ).first()
    if row is None:
        return "gone"  # its subscription was deleted meanwhile
    session.refresh(row)
    attempts = row.attempts + 1
    session.add(
        WebhookAttempt(
            delivery_id=row.id,
            number=attempts,
            started_at=started,
            duration_ms=round(duration * 1000),
            status_code=answer.status,
            error=answer.error,
        )
    )
    mine = row.lease_token == claimed.token
    values: dict[str, object] = {"attempts": attempts, "last_status": answer.status, "updated_at": now}
    if answer.ok:
        state = "delivered"
        values |= {"state": state, "due_at": None, "delivered_at": now, "last_error": None}
    elif mine and row.state == "pending":
        window_ends = (row.retry_from or started) + timedelta(seconds=settings.webhook_retry_seconds)
        next_at = now + timedelta(seconds=backoff(attempts, settings, answer.retry_after, rng))
        state = "failed" if next_at > window_ends else "retry"
        values |= {"last_error": answer.error, "due_at": None if state == "failed" else next_at}
        if state == "failed":
            values["state"] = "failed"
    else:
        state = "lost"
        values |= {"last_error": answer.error}
    if mine:
        values |= {"lease_token": None, "lease_expires_at": None}
    session.exec(update(WebhookDelivery).where(col(WebhookDelivery.id) == row.id).values(**values))
    return state


def deliver(
    delivery_id: str,
    engine: Engine,
    settings: Settings,
    now: Callable[[], datetime] = utcnow,
    poster: Poster = post,
    resolver: urls.Resolver | None = None,
) -> Sent:
    """Send one delivery, if it is due and nobody else holds it; record the attempt."""
    token = uuid.uuid4().hex
    with session_scope(engine) as session:
        claimed = claim(session, delivery_id, token, now(), lease_seconds(settings))
        if claimed is None:
            return Sent("idle")
        subscription = session.get(WebhookSubscription, claimed.subscription_id)
        if subscription is None:
            return Sent("gone")
        url = subscription.url
        try:
            secrets_: list[str] | str = subscriptions.live_secrets(subscription, now())
        except TenantUnusable:
            secrets_ = "the webhook's secret cannot be decrypted: was DOWNSYNC_SECRET_KEY changed?"
    started, clock = now(), time.monotonic()
    if isinstance(secrets_, str):
        answer = Answer(None, secrets_)
    else:
        answer = _attempt(claimed, url, secrets_, settings, resolver, poster)
    duration = time.monotonic() - clock
    with session_scope(engine) as session:
        state = record(session, claimed, answer, started, duration, now(), settings)
    host = httpx.URL(url).host
    if answer.ok:
        log.info("webhook delivery %s (%s) to %s: %s", delivery_id, claimed.event, host, answer.status)
    else:
        # The host only: a URL's path or query may hold the receiver's own credentials.
        log.warning("webhook delivery %s to %s failed (%s): %s", delivery_id, host, state, answer.error)
    return Sent(state, answer)


def _attempt(
    claimed: Claim,
    url: str,
    secrets_: list[str],
    settings: Settings,
    resolver: urls.Resolver | None,
    poster: Poster,
) -> Answer:
    timeout = settings.webhook_timeout_seconds
    try:
        target = subscriptions.check_url(
            url, settings, resolver or (lambda host, port: urls.resolve(host, port, timeout))
        )
    except urls.UrlRefused as exc:
        # Checked again before every attempt: the host may resolve elsewhere than when it was registered.
        return Answer(None, f"refused: the URL {exc}")
    body = claimed.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.HEADER: signing.sign(secrets_, int(time.time()), body),
        "X-Downsync-Event": claimed.event,
        "X-Downsync-Delivery": claimed.delivery_id,
        # 1 on the first attempt; a receiver seeing a delivery id again with a higher number knows it is a retry.
        "X-Downsync-Attempt": str(claimed.attempts + 1),
        "X-Downsync-Webhook": claimed.subscription_id,
    }
    if claimed.email is not None:
        headers["X-Downsync-Mailbox"] = header_text(claimed.email)
    return poster(target, body, headers, timeout)


# --- the loop -------------------------------------------------------------------------------------------------


class DeliveryLoop:
    def __init__(
        self,
        engine: Engine,
        app: Celery,
        settings: Settings,
        now: Callable[[], datetime] = utcnow,
        batch: int = 200,
    ) -> None:
        self.engine = engine
        self.app = app
        self.settings = settings
        self.now = now
        self.batch = batch

    def enqueue(self, delivery_ids: list[str]) -> bool:
        try:
            with self.app.producer_or_acquire() as producer:
                # One try, as for placements: a broker that is down fails at once; the rows are due again.
                producer.connection.ensure_connection(max_retries=0)
                for delivery_id in delivery_ids:
                    self.app.send_task(DELIVER_TASK, args=[delivery_id], retry=False, producer=producer)
        except (OperationalError, KombuError, RedisError, OSError) as exc:
            log.warning("broker unreachable; webhook deliveries are sent when it is back: %s", exc)
            return False
        return True

    def tick(self) -> int:
        """One round: returns how many deliveries were handed to the broker."""
        # One transaction: on SQLite each takes the store's write lock, which the converging workers need too.
        with session_scope(self.engine) as session:
            service.scan(session, self.now())
            ids = take_due(session, self.now(), self.settings.redeliver_seconds, self.batch)
        if ids and not self.enqueue(ids):
            with session_scope(self.engine) as session:
                session.exec(update(WebhookDelivery).where(col(WebhookDelivery.id).in_(ids)).values(enqueued_at=None))
            return 0
        return len(ids)

    def run(self, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                while self.tick() >= self.batch and not stop.is_set():
                    pass
            except SQLAlchemyError as exc:
                log.warning("webhook deliveries: the store did not answer: %s", exc)
            except Exception:  # the loop must outlive a bad tick; the error is reported
                log.exception("webhook delivery tick failed")


def start_loop(app: Celery, stop: threading.Event) -> threading.Thread:
    """The delivery loop beside the dispatcher, as a daemon thread of this process."""
    settings = get_settings()
    loop = DeliveryLoop(get_engine(), app, settings)
    thread = threading.Thread(
        target=loop.run, args=(settings.dispatch_interval_seconds, stop), name="webhook-deliveries", daemon=True
    )
    thread.start()
    return thread


def deliver_now(delivery_id: str) -> str:
    """The ``downsync.deliver`` task's work, with the process's store and settings."""
    return deliver(delivery_id, get_engine(), get_settings()).status

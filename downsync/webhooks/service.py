"""The outbox: which deliveries exist, written with the change they report, and the delivery log.

A job closed by ``downsync.jobs.close_jobs`` gets its deliveries in the same transaction (``job_closed``): the job
is final and told about, or neither. Two other events are found afterwards by the delivery loop (``scan``), since
nothing else may be hooked: a mailbox result become final (for subscriptions that ask for each one), and a job that
was final when it was accepted (a write listing no mailbox never passes ``close_jobs``). Scanned events carry a key,
unique per subscription, so every loop of every worker may find them and each is written once.

Functions here never commit, and never read a secret (signing happens when a delivery is sent).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, cast, func, literal, update
from sqlalchemy import select as sa_select  # six columns: more than sqlmodel's select is typed for
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, or_, select

from api_shim.jobs.schemas import JobView  # the document GET /jobs/{id} answers, so a delivery is exactly that
from downsync.models import (
    PENDING,
    ApiClient,
    Job,
    JobResult,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)

JOB_FINAL = "job.final"
RESULT_FINAL = "result.final"
DELIVERY_PREFIX = "whd_"
# A result's updated_at is its worker's clock when it was recorded, committed a moment later: each scan looks this
# far behind the previous one, so a late commit or a clock a few seconds off is still found (and found once).
SCAN_MARGIN = timedelta(seconds=30)


def new_delivery_id() -> str:
    return DELIVERY_PREFIX + uuid.uuid4().hex


def _insert(session: Session) -> Any:
    return postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def _live(query: Any) -> Any:
    """Subscriptions whose owner may still be told: the tenant's own, or those of a client not revoked."""
    return query.outerjoin(ApiClient, col(ApiClient.id) == col(WebhookSubscription.client_pk)).where(
        or_(col(WebhookSubscription.client_pk).is_(None), col(ApiClient.revoked_at).is_(None))
    )


def job_document(session: Session, job_id: str) -> str:
    """The job as ``GET /api/salesforce/scheduler/jobs/{id}`` shows it now, as the JSON text to sign and send."""
    job = session.exec(select(Job).where(Job.id == job_id).execution_options(populate_existing=True)).one()
    results = session.exec(
        select(JobResult)
        .where(JobResult.job_id == job_id)
        .order_by(col(JobResult.position))
        .execution_options(populate_existing=True)
    ).all()
    return JobView.of(job, list(results)).model_dump_json()


def _row(
    subscription: tuple[str, int],
    event: str,
    job_id: str,
    body: str,
    now: datetime,
    email: str | None = None,
    dedupe_key: str | None = None,
) -> dict[str, Any]:
    return {
        "id": new_delivery_id(),
        "subscription_id": subscription[0],
        "tenant_id": subscription[1],
        "event": event,
        "job_id": job_id,
        "email": email,
        "dedupe_key": dedupe_key,
        "body": body,
        "state": "pending",
        "attempts": 0,
        "created_at": now,
        "due_at": now,
        "updated_at": now,
    }


def job_closed(session: Session, job_id: str, now: datetime) -> int:
    """The job was just closed in this transaction: a delivery per live subscription of its tenant, committed (or
    not) with the close. Returns how many. Costs one indexed query when the tenant has no subscription."""
    subscriptions = session.exec(
        _live(
            select(WebhookSubscription)
            .join(Job, col(Job.tenant_id) == col(WebhookSubscription.tenant_id))
            .where(col(Job.id) == job_id)
        )
    ).all()
    if not subscriptions:
        return 0
    body = job_document(session, job_id)
    rows = [_row((s.id, s.tenant_id), JOB_FINAL, job_id, body, now) for s in subscriptions]
    session.exec(_insert(session)(WebhookDelivery).values(rows))
    return len(rows)


def _result_key(result_id: int, attempts: int) -> str:
    # A result becomes final once per try at it: a retried one (reopened, then final again) has more attempts.
    return f"result:{result_id}:{attempts}"


def scan(session: Session, now: datetime) -> int:
    """Write the deliveries of results become final (for each-result subscriptions) and of jobs final when accepted,
    found since each subscription's last scan; returns how many were new."""
    subscription_id = col(WebhookSubscription.id)
    result_key = (
        literal("result:") + cast(col(JobResult.id), String) + literal(":") + cast(col(JobResult.attempts), String)
    )
    born_key = literal("job:") + col(Job.id)

    def undelivered(key: Any) -> Any:
        return ~(
            select(WebhookDelivery.id)
            .where(col(WebhookDelivery.subscription_id) == subscription_id, col(WebhookDelivery.dedupe_key) == key)
            .exists()
        )

    results = session.exec(
        _live(
            sa_select(
                subscription_id,
                col(WebhookSubscription.tenant_id),
                col(JobResult.id),
                col(JobResult.attempts),
                col(JobResult.job_id),
                col(JobResult.email),
            )
            .join(JobResult, col(JobResult.tenant_id) == col(WebhookSubscription.tenant_id))
            .where(
                col(WebhookSubscription.each_result).is_(True),
                col(JobResult.updated_at) >= col(WebhookSubscription.results_scanned_at),
                col(JobResult.error_code) != PENDING,
                undelivered(result_key),
            )
        ).order_by(col(JobResult.updated_at))
    ).all()
    has_results = select(JobResult.id).where(col(JobResult.job_id) == col(Job.id)).exists()
    born_final = session.exec(
        _live(
            select(subscription_id, col(WebhookSubscription.tenant_id), col(Job.id))
            .join(Job, col(Job.tenant_id) == col(WebhookSubscription.tenant_id))
            .where(
                col(Job.created_at) >= col(WebhookSubscription.results_scanned_at),
                col(Job.state) != "pending",
                ~has_results,
                undelivered(born_key),
            )
        )
    ).all()
    documents: dict[str, str] = {}

    def document(job_id: str) -> str:
        if job_id not in documents:
            documents[job_id] = job_document(session, job_id)
        return documents[job_id]

    rows = [
        _row((sub, tenant), RESULT_FINAL, job_id, document(job_id), now, email, _result_key(result_id, attempts))
        for sub, tenant, result_id, attempts, job_id, email in results
    ]
    rows += [
        _row((sub, tenant), JOB_FINAL, job_id, document(job_id), now, None, f"job:{job_id}")
        for sub, tenant, job_id in born_final
    ]
    written = 0
    if rows:
        # Another loop may have written some since the query: the unique key keeps the first.
        outcome = session.exec(_insert(session)(WebhookDelivery).values(rows).on_conflict_do_nothing())
        written = max(outcome.rowcount, 0)
    # Next time, look from a little before now (never back before an earlier look, nor before the subscription).
    horizon = now - SCAN_MARGIN
    session.exec(
        update(WebhookSubscription)
        .where(col(WebhookSubscription.results_scanned_at) < horizon)
        .values(results_scanned_at=horizon)
    )
    return written


# --- the delivery log ------------------------------------------------------------------------------------------


def delivery(session: Session, subscription_id: str, delivery_id: str) -> WebhookDelivery | None:
    found = session.get(WebhookDelivery, delivery_id)
    return found if found is not None and found.subscription_id == subscription_id else None


def attempts_of(session: Session, delivery_ids: Sequence[str]) -> dict[str, list[WebhookAttempt]]:
    found: dict[str, list[WebhookAttempt]] = {d: [] for d in delivery_ids}
    if delivery_ids:
        query = (
            select(WebhookAttempt)
            .where(col(WebhookAttempt.delivery_id).in_(list(delivery_ids)))
            .order_by(col(WebhookAttempt.delivery_id), col(WebhookAttempt.number), col(WebhookAttempt.id))
        )
        for attempt in session.exec(query):
            found[attempt.delivery_id].append(attempt)
    return found


class CursorError(ValueError):
    pass


def encode_cursor(row: WebhookDelivery) -> str:
    return base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        stamp, delivery_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(stamp), delivery_id
    except (ValueError, UnicodeDecodeError):
        raise CursorError("is not a cursor this service returned") from None


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[WebhookDelivery]
    next_cursor: str | None


def deliveries(
    session: Session, subscription_id: str, state: str | None, cursor: str | None, limit: int
) -> DeliveryPage:
    """The subscription's deliveries, newest first, a page at a time."""
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
    if state:
        query = query.where(WebhookDelivery.state == state)
    if cursor:
        stamp, delivery_id = decode_cursor(cursor)
        query = query.where(
            (col(WebhookDelivery.created_at) < stamp)
            | ((col(WebhookDelivery.created_at) == stamp) & (col(WebhookDelivery.id) < delivery_id))
        )
    order = (col(WebhookDelivery.created_at).desc(), col(WebhookDelivery.id).desc())
    page = list(session.exec(query.order_by(*order).limit(limit + 1)))
    more = len(page) > limit
    page = page[:limit]
    return DeliveryPage(page, encode_cursor(page[-1]) if more and page else None)


def redeliver(session: Session, row: WebhookDelivery, now: datetime) -> WebhookDelivery:
    """Send it again now, whatever became of it, with a fresh retry window; the next loop tick sends it."""
    session.exec(
        update(WebhookDelivery)
        .where(col(WebhookDelivery.id) == row.id)
        .values(state="pending", due_at=now, retry_from=None, enqueued_at=None, updated_at=now)
    )
    found = session.get(WebhookDelivery, row.id, populate_existing=True)
    assert found is not None
    return found


def pending_counts(session: Session, subscription_ids: Iterable[str]) -> dict[str, int]:
    """How many deliveries of each subscription are still to be sent."""
    ids = list(subscription_ids)
    if not ids:
        return {}
    query = (
        select(WebhookDelivery.subscription_id, func.count())
        .where(col(WebhookDelivery.subscription_id).in_(ids), WebhookDelivery.state == "pending")
        .group_by(col(WebhookDelivery.subscription_id))
    )
    return {subscription_id: int(count) for subscription_id, count in session.exec(query)}

"""Celery tasks: thin wrappers around the core's services, JSON arguments."""

from __future__ import annotations

from downsync.queue import CONVERGE_MANY_TASK, CONVERGE_TASK
from downsync.webhooks import delivery
from worker import runtime
from worker.celery_app import app


@app.task(name=CONVERGE_MANY_TASK, ignore_result=True)
def converge_many(placement_ids: list[int]) -> str:
    """Converge placements (each an event in one mailbox) side by side; a no-op for any not due or held elsewhere."""
    return runtime.converge_many(placement_ids)


@app.task(name=CONVERGE_TASK, ignore_result=True)
def converge(placement_id: int) -> str:
    """One placement: the message of versions before batches, still in a queue after an upgrade."""
    return runtime.converge_many([placement_id])


@app.task(name=delivery.DELIVER_TASK, ignore_result=True)
def deliver(delivery_id: str) -> str:
    """Send one webhook delivery; a no-op when it is not due or another worker holds it."""
    return delivery.deliver_now(delivery_id)

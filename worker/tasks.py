"""Celery tasks: thin wrappers around the core's services, JSON arguments."""

from __future__ import annotations

from downsync.queue import CONVERGE_TASK
from downsync.webhooks import delivery
from worker import runtime
from worker.celery_app import app


@app.task(name=CONVERGE_TASK, ignore_result=True)
def converge(placement_id: int) -> str:
    """Converge one placement (an event in one mailbox); a no-op when it is not due or someone else holds it."""
    return runtime.converger().run(placement_id).status


@app.task(name=delivery.DELIVER_TASK, ignore_result=True)
def deliver(delivery_id: str) -> str:
    """Send one webhook delivery; a no-op when it is not due or another worker holds it."""
    return delivery.deliver_now(delivery_id)

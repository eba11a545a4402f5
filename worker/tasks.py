"""Celery tasks: thin wrappers around the services, JSON arguments, acknowledged late."""

from __future__ import annotations

from celery import Task

from worker import converge as converge_service
from worker import sweep as sweep_service
from worker.celery_app import CONVERGE_TASK, SWEEP_TASK, app


@app.task(name=CONVERGE_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def converge(self: Task, placement_id: int) -> str:
    step = converge_service.converge_placement(placement_id)
    if step.countdown is not None:
        raise self.retry(countdown=step.countdown)
    return step.status


@app.task(name=SWEEP_TASK, acks_late=True)
def sweep() -> int:
    return sweep_service.sweep()

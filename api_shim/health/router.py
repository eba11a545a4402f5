"""Liveness and readiness: the process answers; the store is migrated and the broker answers."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from downsync import metrics
from downsync.db import check_migrated, get_engine, session_scope
from downsync.embedded import redis_answers
from downsync.jobs import backlog
from downsync.models import utcnow
from downsync.queue import QUEUE, redis_client
from downsync.settings import get_settings

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _backlog() -> tuple[int, int, float | None]:
    settings = get_settings()
    queued = int(redis_client(settings.redis_url).llen(QUEUE))
    with session_scope() as session:
        due, oldest = backlog(session, utcnow())
    return queued, due, oldest


@router.get(
    "/metrics", summary="Prometheus metrics of every API process, and the work waiting", include_in_schema=False
)
def prometheus() -> Response:
    return Response(metrics.exposition(metrics.StoreGauges(_backlog)), media_type=CONTENT_TYPE_LATEST)


@router.get("/readyz", summary="The store and the broker answer")
def readyz() -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        check_migrated()
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is shown
        checks["database"] = f"error: {type(exc).__name__}: {str(exc)[:200]}"
    checks["broker"] = "ok" if redis_answers(get_settings().redis_url) else "error: Redis does not answer"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )

"""Liveness and readiness: the process answers; the store is migrated and the broker answers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from downsync.db import check_migrated, get_engine
from downsync.embedded import redis_answers
from downsync.settings import get_settings

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


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

"""Logging with tenant and correlation id on every line, and Sentry with nothing private in it."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from downsync.settings import Settings

correlation_id: ContextVar[str] = ContextVar("correlation_id", default="-")
tenant_name: ContextVar[str] = ContextVar("tenant_name", default="-")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s [tenant=%(tenant)s correlation=%(correlation_id)s] %(message)s"
# Request bodies carry meeting text, headers carry tokens: neither leaves the process.
_PRIVATE_KEYS = {"data", "cookies", "headers", "query_string", "env"}


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id.get()
        record.tenant = tenant_name.get()
        return True


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    quiet_libraries()


def quiet_libraries() -> None:
    # exchangelib logs two INFO lines for every free/busy event it parses; at 1000 attendees that is 12,000
    # lines a call, which cost more than the lookup itself.
    logging.getLogger("exchangelib").setLevel(logging.WARNING)


def scrub_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Sentry's last look at an event: tag it, and drop bodies, headers and task arguments."""
    request = event.get("request")
    if isinstance(request, dict):
        for key in _PRIVATE_KEYS:
            request.pop(key, None)
    extra = event.get("extra")
    if isinstance(extra, dict):
        extra.pop("celery-job", None)
    tags = event.setdefault("tags", {})
    tags["tenant"] = tenant_name.get()
    tags["correlation_id"] = correlation_id.get()
    return event


def init_sentry(settings: Settings, component: str) -> bool:
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.fastapi import FastApiIntegration

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.environment,
        server_name=component,
        max_request_body_size="never",
        include_local_variables=False,
        integrations=[FastApiIntegration(), CeleryIntegration()],
        before_send=scrub_event,  # type: ignore[arg-type]
    )
    return True

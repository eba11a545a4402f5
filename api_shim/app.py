"""The FastAPI application: routers, the contract's error shape, the body limit, correlation ids."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI

from api_shim import errors, openapi
from api_shim.availability.router import router as availability_router
from api_shim.health.router import router as health_router
from api_shim.jobs.router import router as jobs_router
from api_shim.meeting.router import router as meeting_router
from api_shim.oauth.router import router as oauth_router
from api_shim.postback.router import router as postback_router
from api_shim.webhooks.router import router as webhooks_router
from downsync import metrics, observability
from downsync.db import check_migrated
from downsync.observability import init_sentry
from downsync.settings import get_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuses bodies over the limit with 413, Content-Length or not, holding at most the limit in memory."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        # The body is read whole here, before the app runs: an exception raised from inside the app's
        # receive() would be caught by FastAPI's body parsing and answered as a 400, not a 413.
        chunks: list[bytes] = []
        seen = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        body = errors.error_body("ErrorRequestTooLarge", f"the body is over {self.limit} bytes")
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})


class JsonBodies:
    """Every body is read as JSON, whatever Content-Type says: callers such as curl label JSON as a form. The OAuth
    token endpoint is the exception: its body is a form, as RFC 6749 says."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("POST", "PUT", "PATCH", "DELETE")
            and not scope.get("path", "").startswith("/oauth/")
        ):
            headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def header_value(text: str) -> bytes:
    """The correlation id as a header can carry it: printable ASCII as it is, every other character (and ``%``)
    percent-encoded as UTF-8, so an id with a control character or "β" comes back intact and decodable."""
    return quote(text, safe=SAFE).encode("ascii")


SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


class Metrics:
    """Counts and times every answer by route template (never the raw path), method, status and tenant."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            metrics.HTTP_REQUESTS.labels(template, method, str(status), observability.tenant_name.get()).inc()
            metrics.HTTP_SECONDS.labels(template, method).observe(time.perf_counter() - started)


class CorrelationHeader:
    """Every response, errors included, carries the request's correlation id in ``X-Correlation-Id``.

    The id comes from the query string, else is generated here; an endpoint that finds one in the
    body replaces it in ``scope["state"]`` before answering.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("utf-8", "replace"))
        state = scope.setdefault("state", {})
        state["correlation_id"] = (query.get("salesforceCorrelationId") or [""])[0][:200] or uuid.uuid4().hex

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-correlation-id"]
                headers.append((b"x-correlation-id", header_value(state["correlation_id"])))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_header)


DESCRIPTION = (
    "The HTTP contract between Salesforce Lightning Scheduler and Exchange calendars (`shared/API.md`). "
    "Every error has one shape: `{errorCode, message, details: [{field, problem}]}`. Writes are stored before "
    "they are answered, then converge in every mailbox; their `Location` names the job to poll."
)


def create_app(check_database: bool = True) -> FastAPI:
    settings = get_settings()
    if check_database:
        check_migrated()
    init_sentry(settings, "api")
    app = FastAPI(
        title="downsync",
        version="0.1.0",
        summary="Keeps Exchange calendars in step with Salesforce Lightning Scheduler.",
        description=DESCRIPTION,
        # Salesforce may omit Content-Type; bodies are JSON regardless (the contract, section 1).
        strict_content_type=False,
        # Served from bundled assets by api_shim.openapi, so they work without a CDN.
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    openapi.install(app)
    app.include_router(oauth_router)
    app.include_router(availability_router)
    app.include_router(postback_router)
    app.include_router(meeting_router)
    app.include_router(jobs_router)
    app.include_router(webhooks_router)
    app.include_router(health_router)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(Metrics)
    app.add_middleware(JsonBodies)
    app.add_middleware(CorrelationHeader)
    return app

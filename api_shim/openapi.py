"""The OpenAPI document as the truth: every status an operation can answer, with the contract's error shape and an
example each, and the docs pages served from bundled assets (no CDN), so ``/docs`` works offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.staticfiles import StaticFiles

from api_shim.security import GUARDS, SCHEMES

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ERROR = "#/components/schemas/Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["errorCode", "message", "details"],
    "properties": {
        "errorCode": {"type": "string"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "problem"],
                "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
            },
        },
        "email": {"type": "string", "description": "Meetings: the organizer"},
    },
}
# What each status means everywhere, with an example of its body.
STATUSES: dict[int, tuple[str, str, str]] = {
    400: ("The body is not JSON.", "ErrorInvalidJson", "the body is not valid JSON: trailing comma at line 3 column 5"),
    401: ("No valid credentials (`WWW-Authenticate` says how).", "ErrorUnauthorized", "the token is not valid"),
    403: ("The credentials lack the scope.", "ErrorForbidden", "the credentials lack the 'sync' scope"),
    404: ("Not found (or another tenant's).", "ErrorJobNotFound", "no job 4f1c..."),
    405: (
        "The method is not allowed here (`Allow` lists those that are).",
        "ErrorMethodNotAllowed",
        "Method Not Allowed",
    ),
    409: ("The id has another meeting.", "MeetingAlreadyExists", "a different meeting with id f9b5... exists"),
    413: ("The body is over the limit.", "ErrorRequestTooLarge", "the body is over 1048576 bytes"),
    422: ("A field is missing, mistyped or out of range.", "ErrorInvalidRequest", "endTime must be after startTime"),
    429: (
        "The tenant's rate limit (`Retry-After` set).",
        "ErrorTooManyRequests",
        "the tenant's rate limit ... is reached",
    ),
    500: (
        "Unexpected; logged and reported.",
        "ErrorInternalServerError",
        "the service failed to answer; it has been logged",
    ),
    502: (
        "Exchange did not answer the read (`Retry-After` set).",
        "ErrorServerBusy",
        "Exchange did not answer the read",
    ),
    503: (
        "The store cannot be reached (`Retry-After` set).",
        "ErrorServiceUnavailable",
        "the store cannot be reached; try again",
    ),
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The statuses besides success this operation can answer."""
    if path.startswith("/oauth/"):
        return {500, 503}
    if path in ("/healthz",):
        return set()
    if path == "/readyz":
        return {503}
    found = {500, 503, 401, 403}
    if operation.get("parameters") or operation.get("requestBody"):
        found.add(422)
    if operation.get("requestBody"):
        found |= {400, 413}
    if path.endswith(("/postback", "/meeting", "/availability")) or path.endswith("/retry"):
        found.add(429)
    if path.endswith("/meeting"):
        found.add(404 if method != "post" else 409)
        if method == "get":
            found.add(502)
    if "{job_id}" in path or "{webhook_id}" in path:
        found.add(404)
    if path.endswith("/webhooks") and method == "post":
        found.add(409)
    return found


def _example(status: int, path: str) -> dict[str, Any]:
    _, code, message = STATUSES[status]
    if status == 404 and path.endswith("/meeting"):
        code, message = "MeetingNotFound", "no such meeting for this organizer"
    if status == 404 and "{webhook_id}" in path:
        code, message = "ErrorWebhookNotFound", "no webhook wh_4f1c..."
    if status == 404 and "{delivery_id}" in path:
        code, message = "ErrorDeliveryNotFound", "no delivery whd_9a0e... of webhook wh_4f1c..."
    if status == 409 and path.endswith("/webhooks"):
        code, message = "ErrorTooManyWebhooks", "a tenant has at most 25 webhooks; delete one first"
    if status == 422 and path.endswith("/webhooks"):
        code, message = "ErrorInvalidRequest", "url must be an https URL (http is allowed outside production only)"
    body: dict[str, Any] = {"errorCode": code, "message": message, "details": []}
    if status == 422:
        body["details"] = [{"field": "endTime", "problem": "must be after startTime"}]
        if path.endswith("/webhooks"):
            body["details"] = [{"field": "url", "problem": message.removeprefix("url ")}]
    if path.endswith("/meeting") and status in (404, 409):
        body = {"email": "organizer@domain.com", **body}
    return body


def document(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = ERROR_SCHEMA
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for status in _statuses(path, method, operation):
                entry = responses.setdefault(str(status), {})
                entry.setdefault("description", STATUSES[status][0])
                if path.startswith("/oauth/") and "content" in entry:
                    continue
                entry["content"] = {"application/json": {"schema": {"$ref": ERROR}, "example": _example(status, path)}}
            # Every answer names its correlation id.
            for entry in responses.values():
                entry.setdefault("headers", {})["X-Correlation-Id"] = {
                    "description": "The request's salesforceCorrelationId (printable ASCII as sent, anything else "
                    "percent-encoded as UTF-8), or one generated for it",
                    "schema": {"type": "string"},
                }
    _secure(app, schema)
    app.openapi_schema = schema
    return schema


def _guarded(dependant: Dependant) -> bool:
    return dependant.call in GUARDS or any(_guarded(d) for d in dependant.dependencies)


def _secure(app: FastAPI, schema: dict[str, Any]) -> None:
    """Every scheme in the components, and as the alternatives of every operation that identifies its caller."""
    schemes = {s.scheme_name: jsonable_encoder(s.model, by_alias=True, exclude_none=True) for s in SCHEMES}
    schema["components"]["securitySchemes"] = schemes
    for route in iter_route_contexts(app.routes):  # routes as the document sees them, with their routers' prefixes
        if isinstance(route.original_route, APIRoute) and _guarded(route.dependant):
            for method in route.methods or ():
                schema["paths"][route.path_format][method.lower()]["security"] = [{name: []} for name in schemes]


def install(app: FastAPI) -> None:
    app.openapi = lambda: document(app)  # type: ignore[method-assign]
    app.mount("/static/docs", StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url="/static/docs/swagger-ui-bundle.js",
            swagger_css_url="/static/docs/swagger-ui.css",
            swagger_favicon_url="/static/docs/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title}: API",
            redoc_js_url="/static/docs/redoc.standalone.js",
            redoc_favicon_url="/static/docs/favicon.png",
            with_google_fonts=False,
        )

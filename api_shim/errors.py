"""The contract's one error shape, and the handlers that turn every failure into it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError as DatabaseUnavailable
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}
        # Fields the seeds put beside the code, e.g. the organizer's "email" of MeetingNotFound.
        self.extra = extra or {}


def error_body(code: str, message: str, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"errorCode": code, "message": message, "details": details or []}


def _field(loc: tuple[Any, ...]) -> str:
    """``("body", "attendees", 1, "email")`` as ``attendees[1].email``."""
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or (str(loc[0]) if loc else "body")


def _line_column(doc: str, pos: int) -> tuple[int, int]:
    line = doc.count("\n", 0, pos) + 1
    column = pos - (doc.rfind("\n", 0, pos) + 1) + 1
    return line, column


def _trailing_comma(doc: str, pos: int) -> int | None:
    """Where the comma is when the parser stopped at one that closes nothing (the seeds' samples have them)."""
    if pos < len(doc) and doc[pos] == ",":
        after = len(doc) - len(doc[pos + 1 :].lstrip())
        return pos if after < len(doc) and doc[after] in "}]" else None
    before = len(doc[:pos].rstrip()) - 1
    return before if pos < len(doc) and doc[pos] in "}]" and before >= 0 and doc[before] == "," else None


def _invalid_json(message: str) -> ApiError:
    return ApiError(400, "ErrorInvalidJson", message, [{"field": "body", "problem": message}])


def validation_error(exc: RequestValidationError) -> ApiError:
    errors = exc.errors()
    invalid_json = next((e for e in errors if e.get("type") == "json_invalid"), None)
    if invalid_json is not None:
        doc = exc.body if isinstance(exc.body, str) else ""
        pos = invalid_json["loc"][1] if len(invalid_json["loc"]) > 1 else 0
        line, column = _line_column(doc, pos)
        cause = invalid_json.get("ctx", {}).get("error", "invalid JSON")
        message = f"the body is not valid JSON: {cause} at line {line} column {column}"
        comma = _trailing_comma(doc, pos)
        if comma is not None:
            comma_line, comma_column = _line_column(doc, comma)
            message = f"the body is not valid JSON: trailing comma at line {comma_line} column {comma_column} ({cause})"
        return _invalid_json(message)
    if any(e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",) for e in errors):
        # FastAPI reports an empty body as a missing one; to the caller it is simply not JSON.
        return _invalid_json("the body is not valid JSON: it is empty (Expecting value at line 1 column 1)")
    details = []
    for error in errors:
        problem = str(error.get("msg", "is invalid"))
        if problem.startswith("Value error, "):
            problem = problem[len("Value error, ") :]
        if error.get("type") == "missing":
            problem = "is required"
        details.append({"field": _field(tuple(error.get("loc", ()))), "problem": problem})
    # A model-level problem's field is just "body"; its problem reads on its own.
    summary = "; ".join(d["problem"] if d["field"] == "body" else f"{d['field']} {d['problem']}" for d in details[:5])
    return ApiError(422, "ErrorInvalidRequest", summary or "the request is invalid", details)


def _respond(error: ApiError) -> JSONResponse:
    body = {**error.extra, **error_body(error.code, error.message, error.details)}
    return JSONResponse(body, error.status, headers=error.headers)


METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods some route takes for this path (routers nest, so each method is tried against them all)."""
    return [
        method
        for method in METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.router.routes
        )
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _respond(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _respond(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's "error parsing the body" for what json.loads refused outright, such as bytes that are not UTF-8.
            return _respond(_invalid_json(f"the body is not valid JSON: {exc.__cause__}"))
        codes = {404: "ErrorNotFound", 405: "ErrorMethodNotAllowed"}
        error = ApiError(exc.status_code, codes.get(exc.status_code, "ErrorInvalidRequest"), str(exc.detail))
        error.headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110: Allow lists every method of the path, which Starlette spreads over one route per method.
            error.headers["Allow"] = ", ".join(allowed_methods(request))
        return _respond(error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return _respond(ApiError(500, "ErrorInternalServerError", "the service failed to answer; it has been logged"))

    @app.exception_handler(DatabaseUnavailable)
    async def store_down(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.error("the store cannot be reached: %s", exc.orig)
        return _respond(
            ApiError(
                503, "ErrorServiceUnavailable", "the store cannot be reached; try again", headers={"Retry-After": "5"}
            )
        )

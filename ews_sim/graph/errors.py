"""Graph's error body ``{"error": {"code", "message", "innerError"}}`` and Entra's OAuth error body."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

# HTTP status Graph answers with for the Exchange codes a fault rule may inject.
CODE_STATUS = {
    "ErrorItemNotFound": 404,
    "ErrorInvalidUser": 404,
    "MailboxNotEnabledForRESTAPI": 404,
    "ErrorAccessDenied": 403,
    "ErrorServerBusy": 503,
    "ErrorInternalServerError": 500,
    "ErrorInternalServerTransientError": 500,
    "ErrorTimeoutExpired": 504,
    "ErrorIrresolvableConflict": 412,
    "ApplicationThrottled": 429,
    "TooManyRequests": 429,
    "InvalidAuthenticationToken": 401,
}

MESSAGES = {
    "ErrorItemNotFound": "The specified object was not found in the store.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorServerBusy": "The server cannot service this request right now. Try again later.",
    "ErrorInternalServerError": "An internal server error occurred. The operation failed.",
    "ErrorInternalServerTransientError": "An internal server error occurred. Try again later.",
    "ErrorTimeoutExpired": "The request timed out.",
    "ErrorIrresolvableConflict": "The send or update operation could not be performed because the change key passed in "
    "the request does not match the current change key for the item.",
    "MailboxNotEnabledForRESTAPI": "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
    "ErrorInvalidIdMalformed": "Id is malformed.",
}
RAOP_DENIED = "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."


def message_for(code: str) -> str:
    return MESSAGES.get(code, f"The request failed with {code}.")


def graph_date() -> str:
    # Graph writes innerError.date without an offset or fraction.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def error_body(code: str, message: str, request_id: str, client_request_id: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": graph_date(),
                "request-id": request_id,
                "client-request-id": client_request_id or request_id,
            },
        }
    }


class GraphError(Exception):
    """A failed Graph call: its HTTP status, Graph error code, message and extra headers (Retry-After...)."""

    def __init__(self, status: int, code: str, message: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message if message is not None else message_for(code)
        self.headers = headers or {}


def bad_request(message: str, code: str = "BadRequest") -> GraphError:
    return GraphError(400, code, message)


def check_error_shape(body: Any) -> str | None:
    """Graph's error body has a fixed shape that no CSDL type describes; strict mode checks it here."""
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return "an error response must be {'error': {...}}"
    error = body["error"]
    if not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        return "error.code and error.message must be strings"
    inner = error.get("innerError")
    if not isinstance(inner, dict) or not {"date", "request-id", "client-request-id"} <= set(inner):
        return "error.innerError must carry date, request-id and client-request-id"
    extra = set(error) - {"code", "message", "innerError", "details", "target"}
    return f"unexpected error members {sorted(extra)}" if extra else None


# --- Entra ID (the token endpoint) ---------------------------------------------------------------------


def entra_error(error: str, aadsts: int, description: str) -> dict[str, Any]:
    """Entra's OAuth error body, as msal reads it (``error``, ``error_description``, ``error_codes``...)."""
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": f"AADSTS{aadsts}: {description} Trace ID: {trace} Correlation ID: {correlation} "
        f"Timestamp: {stamp}",
        "error_codes": [aadsts],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
    }


class EntraError(Exception):
    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"{error} AADSTS{aadsts}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def body(self) -> dict[str, Any]:
        return entra_error(self.error, self.aadsts, self.description)

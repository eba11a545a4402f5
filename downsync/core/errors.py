"""What a gateway raises, sorted by what the core does next. Backends translate their own failures into these.

Anything else a gateway raises is a bug: the core reports it once and records ErrorInternalServerError.
"""

from __future__ import annotations


class GatewayError(Exception):
    """A failed calendar call, with the code the contract reports for it (an Exchange response code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TransientError(GatewayError):
    """Worth trying again. ``back_off`` is the server's own wait in seconds; ``throttled`` means the server only
    asked to wait, which never makes a mailbox's result final."""

    def __init__(self, code: str, message: str, back_off: float | None = None, throttled: bool = False) -> None:
        super().__init__(code, message)
        self.back_off = back_off
        self.throttled = throttled


class UnclearOutcome(TransientError):
    """A write whose outcome is unknown (no answer in time, connection lost): it may still land later."""


class Conflict(GatewayError):
    """The item changed since it was read (stale change key or etag), or vanished: read again, then decide."""


class PermanentError(GatewayError):
    """Trying again gives the same answer: record it."""


MAILBOX_NOT_FOUND = "ErrorMailRecipientNotFound"
TIMEOUT = "ErrorTimeout"

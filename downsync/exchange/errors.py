"""Exchange failures sorted where they happen: transient ones are retried, permanent ones recorded.

exchangelib runs with FailFast, so every failure surfaces here at once and the caller (a Celery
task, or the availability deadline) decides when to try again; no thread sleeps inside exchangelib.
"""

from __future__ import annotations

import requests
from exchangelib import errors as ews

# Addresses that are not mailboxes of the organisation, reported under the one code the contract uses.
NOT_FOUND = (ews.ErrorNonExistentMailbox, ews.ErrorMailRecipientNotFound, ews.ErrorInvalidSmtpAddress)
TRANSIENT = (
    ews.ErrorInternalServerTransientError,
    ews.ErrorTooManyObjectsOpened,
    ews.ErrorExceededConnectionCount,
    ews.ErrorMailboxStoreUnavailable,
    ews.ErrorMailboxMoveInProgress,
    ews.ErrorConnectionFailed,
    ews.ErrorInternalServerError,
    ews.ErrorBatchProcessingStopped,
    ews.ErrorIrresolvableConflict,
    ews.ErrorInvalidChangeKey,
    ews.ErrorStaleObject,
    # The item vanished between finding and changing it (its owner deleted it): the next try recreates it.
    ews.ErrorItemNotFound,
)


class ExchangeError(Exception):
    """A failed Exchange call, with the code the contract reports for it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class TransientExchangeError(ExchangeError):
    """Worth trying again; ``back_off`` is the server's own hint in seconds, when it gave one."""

    def __init__(self, code: str, message: str, back_off: float | None = None) -> None:
        super().__init__(code, message)
        self.back_off = back_off


class PermanentExchangeError(ExchangeError):
    """Trying again gives the same answer: record it."""


def classify(exc: BaseException) -> ExchangeError:
    if isinstance(exc, ExchangeError):
        return exc
    text = str(exc)[:500]
    if isinstance(exc, ews.ErrorServerBusy):
        # exchangelib re-raises a client-side timeout as ErrorServerBusy when its session pool has room;
        # it was no answer in time, not the server asking us to back off.
        if text.startswith("Reraised from ErrorTimeoutExpired"):
            return TransientExchangeError("ErrorTimeout", text)
        return TransientExchangeError("ErrorServerBusy", text, back_off=exc.back_off)
    if isinstance(exc, ews.ErrorTimeoutExpired | requests.Timeout):
        return TransientExchangeError("ErrorTimeout", text)
    if isinstance(exc, NOT_FOUND):
        return PermanentExchangeError("ErrorMailRecipientNotFound", text)
    if isinstance(exc, ews.UnauthorizedError):
        return PermanentExchangeError("ErrorAccessDenied", "Exchange refused the service account's credentials (401)")
    if isinstance(exc, TRANSIENT):
        return TransientExchangeError(type(exc).__name__, text)
    if isinstance(exc, ews.ResponseMessageError):
        return PermanentExchangeError(type(exc).__name__, text)
    if isinstance(exc, requests.ConnectionError | ews.TransportError | ews.MalformedResponseError | ConnectionError):
        return TransientExchangeError("ErrorConnectionFailed", text)
    return TransientExchangeError("ErrorInternalServerError", f"{type(exc).__name__}: {text}")

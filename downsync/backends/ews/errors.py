"""Exchange's failures, as exchangelib raises them, sorted into the core's kinds where they happen.

exchangelib runs with FailFast, so every failure surfaces here at once and the core decides when to
try again; no thread sleeps inside exchangelib. Anything that is not an Exchange or transport failure
is not translated: it is a bug, and the core reports it as one.
"""

from __future__ import annotations

import requests
from exchangelib import errors as ews

from downsync.core.errors import (
    MAILBOX_NOT_FOUND,
    TIMEOUT,
    Conflict,
    GatewayError,
    PermanentError,
    TransientError,
    UnclearOutcome,
)

# Addresses that are not mailboxes of the organisation, reported under the one code the contract uses.
NOT_FOUND = (ews.ErrorNonExistentMailbox, ews.ErrorMailRecipientNotFound, ews.ErrorInvalidSmtpAddress)
# The item changed or vanished since it was read: read again, then decide.
STALE = (ews.ErrorIrresolvableConflict, ews.ErrorInvalidChangeKey, ews.ErrorStaleObject, ews.ErrorItemNotFound)
TRANSIENT = (
    ews.ErrorInternalServerTransientError,
    ews.ErrorTooManyObjectsOpened,
    ews.ErrorExceededConnectionCount,
    ews.ErrorMailboxStoreUnavailable,
    ews.ErrorMailboxMoveInProgress,
    ews.ErrorConnectionFailed,
    ews.ErrorBatchProcessingStopped,
)
# After these a write may or may not have happened.
UNCLEAR = (ews.ErrorInternalServerError, ews.ErrorTimeoutExpired, requests.Timeout)
CONNECTION = (requests.ConnectionError, ews.TransportError, ews.MalformedResponseError, ConnectionError)


def classify(exc: BaseException, write: bool = False) -> GatewayError | None:
    """The core's error for an Exchange failure, or None for anything else (a bug, to be raised as it is).
    ``write``: the failed call could have changed the mailbox."""
    if isinstance(exc, GatewayError):
        return exc
    text = str(exc)[:500]
    unclear = UnclearOutcome if write else TransientError
    if isinstance(exc, ews.ErrorServerBusy):
        # exchangelib re-raises a client-side timeout as ErrorServerBusy when its session pool has room;
        # it was no answer in time, not the server asking us to back off.
        if text.startswith("Reraised from ErrorTimeoutExpired"):
            return unclear(TIMEOUT, text)
        # exchangelib's guess from an error answer (a 503 closing its connection, a 401), not the server's request
        # to wait: a transient failure without a back-off.
        if text.startswith("Caused by"):
            return TransientError("ErrorInternalServerTransientError", text)
        return TransientError("ErrorServerBusy", text, back_off=exc.back_off, throttled=True)
    if isinstance(exc, ews.ErrorTimeoutExpired | requests.Timeout):
        return unclear(TIMEOUT, text)
    if isinstance(exc, NOT_FOUND):
        return PermanentError(MAILBOX_NOT_FOUND, text)
    if isinstance(exc, ews.UnauthorizedError):
        return PermanentError("ErrorAccessDenied", "Exchange refused the service account's credentials (401)")
    if isinstance(exc, STALE):
        return Conflict(type(exc).__name__, text)
    if isinstance(exc, TRANSIENT):
        return TransientError(type(exc).__name__, text)
    if isinstance(exc, UNCLEAR):
        return unclear(type(exc).__name__, text)
    if isinstance(exc, ews.ResponseMessageError):
        return PermanentError(type(exc).__name__, text)
    if isinstance(exc, CONNECTION):
        return unclear("ErrorConnectionFailed", text)
    if isinstance(exc, ews.EWSError):
        return TransientError("ErrorInternalServerError", f"{type(exc).__name__}: {text}")
    return None


def raising(exc: BaseException, write: bool = False) -> BaseException:
    """What to raise for ``exc``: its core error, or ``exc`` itself when it is not Exchange's failure."""
    return classify(exc, write) or exc

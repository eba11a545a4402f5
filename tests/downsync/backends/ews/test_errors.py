"""Sorting Exchange failures into the core's kinds at the EWS boundary."""

from __future__ import annotations

import pytest
import requests
from exchangelib import errors as ews

from downsync.backends.ews.errors import classify, raising
from downsync.core.errors import Conflict, PermanentError, TransientError, UnclearOutcome


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (ews.ErrorServerBusy("busy", back_off=1.5), TransientError, "ErrorServerBusy"),
        (ews.ErrorServerBusy("Reraised from ErrorTimeoutExpired(read timed out)"), TransientError, "ErrorTimeout"),
        (ews.ErrorServerBusy("Caused by closed connection"), TransientError, "ErrorInternalServerTransientError"),
        (ews.ErrorTimeoutExpired("slow"), TransientError, "ErrorTimeout"),
        (requests.ReadTimeout("slow"), TransientError, "ErrorTimeout"),
        (requests.ConnectionError("refused"), TransientError, "ErrorConnectionFailed"),
        (ews.ErrorInternalServerTransientError("503"), TransientError, "ErrorInternalServerTransientError"),
        (ews.ErrorIrresolvableConflict("stale"), Conflict, "ErrorIrresolvableConflict"),
        (ews.ErrorItemNotFound("gone"), Conflict, "ErrorItemNotFound"),
        (ews.ErrorNonExistentMailbox("no"), PermanentError, "ErrorMailRecipientNotFound"),
        (ews.ErrorMailRecipientNotFound("no"), PermanentError, "ErrorMailRecipientNotFound"),
        (ews.ErrorImpersonateUserDenied("no"), PermanentError, "ErrorImpersonateUserDenied"),
        (ews.ErrorAccessDenied("no"), PermanentError, "ErrorAccessDenied"),
        (ews.UnauthorizedError("401"), PermanentError, "ErrorAccessDenied"),
        (ews.ErrorQuotaExceeded("full"), PermanentError, "ErrorQuotaExceeded"),
    ],
)
def test_classify_a_read(exc: BaseException, kind: type, code: str) -> None:
    error = classify(exc, write=False)
    assert type(error) is kind and error.code == code


@pytest.mark.parametrize(
    "exc",
    [
        ews.ErrorTimeoutExpired("slow"),
        requests.ReadTimeout("slow"),
        requests.ConnectionError("reset"),
        ews.ErrorServerBusy("Reraised from ErrorTimeoutExpired(read timed out)"),
        ews.ErrorInternalServerError("500"),
    ],
)
def test_a_write_without_an_answer_is_an_unclear_outcome(exc: BaseException) -> None:
    assert isinstance(classify(exc, write=True), UnclearOutcome)
    assert not isinstance(classify(exc, write=False), UnclearOutcome)


def test_throttling_keeps_the_servers_back_off_and_says_it_is_throttling() -> None:
    error = classify(ews.ErrorServerBusy("busy", back_off=2.5))
    assert isinstance(error, TransientError) and error.back_off == 2.5 and error.throttled
    assert not classify(ews.ErrorInternalServerTransientError("503")).throttled  # type: ignore[union-attr]


def test_a_bug_is_not_dressed_up_as_an_exchange_error() -> None:
    bug = TypeError("unexpected keyword")
    assert classify(bug) is None and raising(bug) is bug
    assert isinstance(classify(ews.EWSError("odd answer")), TransientError)

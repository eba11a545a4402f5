"""Sorting Exchange failures into transient (retried) and permanent (recorded) at the boundary."""

from __future__ import annotations

import pytest
import requests
from exchangelib import errors as ews

from downsync.exchange.errors import PermanentExchangeError, TransientExchangeError, classify


@pytest.mark.parametrize(
    ("exc", "kind", "code"),
    [
        (ews.ErrorServerBusy("busy", back_off=1.5), TransientExchangeError, "ErrorServerBusy"),
        (
            ews.ErrorServerBusy("Reraised from ErrorTimeoutExpired(read timed out)"),
            TransientExchangeError,
            "ErrorTimeout",
        ),
        (ews.ErrorTimeoutExpired("slow"), TransientExchangeError, "ErrorTimeout"),
        (requests.ReadTimeout("slow"), TransientExchangeError, "ErrorTimeout"),
        (requests.ConnectionError("refused"), TransientExchangeError, "ErrorConnectionFailed"),
        (ews.ErrorInternalServerTransientError("503"), TransientExchangeError, "ErrorInternalServerTransientError"),
        (ews.ErrorIrresolvableConflict("stale"), TransientExchangeError, "ErrorIrresolvableConflict"),
        (ews.ErrorNonExistentMailbox("no"), PermanentExchangeError, "ErrorMailRecipientNotFound"),
        (ews.ErrorMailRecipientNotFound("no"), PermanentExchangeError, "ErrorMailRecipientNotFound"),
        (ews.ErrorImpersonateUserDenied("no"), PermanentExchangeError, "ErrorImpersonateUserDenied"),
        (ews.ErrorAccessDenied("no"), PermanentExchangeError, "ErrorAccessDenied"),
        (ews.UnauthorizedError("401"), PermanentExchangeError, "ErrorAccessDenied"),
        (ews.ErrorQuotaExceeded("full"), PermanentExchangeError, "ErrorQuotaExceeded"),
        (RuntimeError("bug"), TransientExchangeError, "ErrorInternalServerError"),
    ],
)
def test_classify(exc: BaseException, kind: type, code: str) -> None:
    error = classify(exc)
    assert type(error) is kind and error.code == code


def test_the_servers_back_off_is_kept() -> None:
    error = classify(ews.ErrorServerBusy("busy", back_off=2.5))
    assert isinstance(error, TransientExchangeError) and error.back_off == 2.5

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


def test_back_off_after_an_unclear_outcome_waits_out_the_exchange_timeout() -> None:
    from downsync.settings import Settings
    from worker.converge import backoff

    settings = Settings(retry_base_seconds=0.1, retry_max_seconds=60, exchange_timeout_seconds=30)
    assert backoff(1, TransientExchangeError("ErrorTimeout", "slow"), settings) >= 30
    assert backoff(1, TransientExchangeError("ErrorServerBusy", "busy", back_off=2.0), settings) == 2.0
    assert backoff(1, TransientExchangeError("ErrorServerBusy", "busy"), settings) <= 0.1
    assert backoff(20, TransientExchangeError("ErrorServerBusy", "busy", back_off=900), settings) == 60

"""An EWS tenant's account concurrency: 27 unless given, and a value Exchange could not mean is refused clearly."""

from __future__ import annotations

import pytest

from downsync.backends import BackendError, validate

BASE = {"url": "https://mail.example.com/EWS/Exchange.asmx", "username": "svc@example.com", "password": "p"}


def test_the_account_concurrency_defaults_to_exchanges_27() -> None:
    assert validate("ews", BASE).max_concurrency == 27  # type: ignore[attr-defined]
    assert validate("ews", BASE | {"max_concurrency": "5"}).max_concurrency == 5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("value", "said"),
    [(0, "greater than or equal to 1"), ("abc", "valid integer"), (2000, "less than or equal to 1000")],
)
def test_a_concurrency_exchange_could_not_mean_is_refused(value: object, said: str) -> None:
    with pytest.raises(BackendError, match=f"ews settings: max_concurrency: .*{said}"):
        validate("ews", BASE | {"max_concurrency": value})

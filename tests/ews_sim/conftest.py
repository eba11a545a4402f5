"""Fixtures of the simulator's own tests: exchangelib accounts with and without a pinned server version."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from exchangelib import Account

from ews_sim.testing import DEFAULT_BUILD, SimClient, ews_account

Connect = Callable[[str], Account]


@pytest.fixture(params=["pinned", "guessed"])
def connect(request: pytest.FixtureRequest, sim: SimClient) -> Connect:
    """Builds exchangelib accounts on a reset simulator: with the build pinned as the service pins it, or with no
    version, so exchangelib guesses it first (ConvertId) as an unconfigured client does."""
    build = DEFAULT_BUILD if request.param == "pinned" else None
    return lambda email: ews_account(sim.ews_url, email, build=build)

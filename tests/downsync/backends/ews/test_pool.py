"""A worker's placements never wait for one another's exchangelib session: the pool holds as many as it converges
at once (``OpenContext.calls_at_once``), not only the 10 it held before."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from downsync.backends import OpenContext
from downsync.backends.ews import EwsOptions
from downsync.backends.ews.gateway import EwsGateway
from downsync.core.model import Tag
from downsync.settings import Settings
from ews_sim.app import Running
from ews_sim.testing import SERVICE_ACCOUNT, SERVICE_PASSWORD, SimClient

SETTINGS = Settings(environment="test", exchange_timeout_seconds=10)
LATENCY = 0.6


def finds_at_once(
    ews_simulator: Running, sim: SimClient, calls_at_once: int, mailboxes: int, endpoint: str | None = None
) -> float:
    """Seconds ``mailboxes`` finds take on as many threads, each answered after LATENCY."""
    people = [f"pool{n}@contoso.com" for n in range(mailboxes)]
    sim.add_mailboxes(*people)
    # An endpoint of its own: exchangelib shares one session pool among every account of an endpoint and user.
    options = EwsOptions(
        url=f"{ews_simulator.ews_url}?pool={endpoint or calls_at_once}",
        username=SERVICE_ACCOUNT,
        password=SERVICE_PASSWORD,
    )  # type: ignore[arg-type]
    gateway = EwsGateway(
        options, OpenContext(tenant_id=9000 + calls_at_once, settings=SETTINGS, calls_at_once=calls_at_once)
    )
    sim.clear_faults()
    sim.fault(operation="FindItem", latencyMs=int(LATENCY * 1000))
    began = time.monotonic()
    with ThreadPoolExecutor(mailboxes) as pool:
        found = list(pool.map(lambda m: gateway.find(m, Tag("t", "postback", "pool")), people))
    assert found == [[]] * mailboxes
    return time.monotonic() - began


def test_sixteen_placements_at_once_each_have_a_session(ews_simulator: Running, sim: SimClient) -> None:
    assert finds_at_once(ews_simulator, sim, 16, 16) < 2 * LATENCY


def test_a_process_with_fewer_calls_keeps_the_pool_of_ten(ews_simulator: Running, sim: SimClient) -> None:
    # What the test above guards against: the 11th to 16th calls waited for one of the first ten sessions.
    assert finds_at_once(ews_simulator, sim, 1, 16) >= 2 * LATENCY


def test_the_shared_pool_grows_to_the_largest_asked(ews_simulator: Running, sim: SimClient) -> None:
    finds_at_once(ews_simulator, sim, 1, 2, endpoint="shared")
    assert finds_at_once(ews_simulator, sim, 16, 16, endpoint="shared") < 2 * LATENCY

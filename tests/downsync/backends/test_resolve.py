"""``CalendarGateway.resolve`` on both real backends against the simulator's directory: an alias and a primary
address name the same mailbox, an address that names none is None (an answer, not a failure)."""

from __future__ import annotations

import pytest

from downsync.backends import OpenContext
from downsync.backends.ews import EwsOptions
from downsync.backends.ews.gateway import EwsGateway
from downsync.backends.graph.gateway import GraphGateway
from downsync.core.errors import TransientError
from downsync.settings import Settings
from ews_sim.app import Running
from ews_sim.testing import SERVICE_ACCOUNT, SERVICE_PASSWORD, SimClient
from tests.downsync.backends.graph.conftest import options as graph_options

SETTINGS = Settings(environment="test", exchange_timeout_seconds=5)


@pytest.fixture(params=["ews", "graph"])
def gateway(request: pytest.FixtureRequest, ews_simulator: Running, sim: SimClient) -> EwsGateway | GraphGateway:
    sim.add_mailboxes(
        "dana@contoso.com",
        "danny@contoso.com",
        "olga@contoso.com",
        aliases={"dana@contoso.com": ["d.smith@contoso.com"], "olga@contoso.com": ["o.p@contoso.com"]},
    )
    sim.add_mailboxes("olga@contoso.com", on_premises=True)
    context = OpenContext(tenant_id=hash(request.param), settings=SETTINGS)
    if request.param == "ews":
        ews = EwsOptions(url=ews_simulator.ews_url, username=SERVICE_ACCOUNT, password=SERVICE_PASSWORD)  # type: ignore[arg-type]
        return EwsGateway(ews, context)
    if ews_simulator.ca_file is None:
        pytest.skip("the simulator serves no HTTPS here, which Graph (msal) needs")
    return GraphGateway(graph_options(ews_simulator), context)


def test_any_address_of_a_mailbox_resolves_to_its_primary_one(gateway: EwsGateway | GraphGateway) -> None:
    assert gateway.resolve("d.smith@contoso.com") == "dana@contoso.com"
    assert gateway.resolve("D.Smith@Contoso.com") == "dana@contoso.com"
    assert gateway.resolve("dana@contoso.com") == "dana@contoso.com"
    # dana@ is the start of danny@ too (EWS's smtp: prefix search finds both): only the mailbox holding it counts.
    assert gateway.resolve("danny@contoso.com") == "danny@contoso.com"


def test_an_address_that_names_no_mailbox_is_none(gateway: EwsGateway | GraphGateway) -> None:
    assert gateway.resolve("ghost@contoso.com") is None
    assert gateway.resolve("guest@example.org") is None


def test_a_mailbox_out_of_the_calendar_api_s_reach_resolves_through_the_directory(
    gateway: EwsGateway | GraphGateway, ews_simulator: Running, sim: SimClient
) -> None:
    if isinstance(gateway, EwsGateway):
        assert gateway.resolve("o.p@contoso.com") == "olga@contoso.com"
        return
    # Graph: an on-premises mailbox has no calendar there; the directory knows it, if the app may read users.
    assert gateway.resolve("o.p@contoso.com") is None
    sim.add_app("directory-app", client_secret="s", roles=["Calendars.ReadWrite", "User.ReadBasic.All"])
    context = OpenContext(tenant_id=hash("directory-app"), settings=SETTINGS)
    reader = GraphGateway(graph_options(ews_simulator, client_id="directory-app", client_secret="s"), context)
    assert reader.resolve("o.p@contoso.com") == "olga@contoso.com"


def test_a_directory_that_does_not_answer_is_a_transient_failure(
    gateway: EwsGateway | GraphGateway, sim: SimClient
) -> None:
    operation = "ResolveNames" if isinstance(gateway, EwsGateway) else "graph.getCalendar"
    if isinstance(gateway, EwsGateway):
        sim.fault(operation=operation, responseCode="ErrorServerBusy", backOffMilliseconds=500)
    else:
        sim.fault(operation=operation, httpStatus=503)
    with pytest.raises(TransientError):
        gateway.resolve("d.smith@contoso.com")

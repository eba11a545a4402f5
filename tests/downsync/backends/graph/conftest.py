"""Graph gateways of the test organisation's apps, over the simulator's HTTPS front door."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from downsync.backends import OpenContext
from downsync.backends.graph import GraphOptions
from downsync.backends.graph.gateway import GraphGateway
from downsync.settings import Settings
from ews_sim.app import Running
from ews_sim.testing import GRAPH_APP_ID, GRAPH_APP_SECRET, GRAPH_TENANT

SETTINGS = Settings(environment="test", exchange_timeout_seconds=5)


def options(running: Running, **overrides: Any) -> GraphOptions:
    assert running.ca_file is not None
    values: dict[str, Any] = {
        "azure_tenant": GRAPH_TENANT,
        "client_id": GRAPH_APP_ID,
        "client_secret": GRAPH_APP_SECRET,
        "authority": running.tls_url,
        "graph_url": running.graph_url,
        "ca_bundle": running.ca_file.read_text(),
    }
    values.update(overrides)
    return GraphOptions.model_validate({k: v for k, v in values.items() if v is not None})


GatewayFactory = Callable[..., GraphGateway]


@pytest.fixture
def make_gateway(ews_simulator: Running) -> GatewayFactory:
    def make(**overrides: Any) -> GraphGateway:
        return GraphGateway(
            options(ews_simulator, **overrides), OpenContext(tenant_id=hash(str(overrides)), settings=SETTINGS)
        )

    return make


@pytest.fixture
def gateway(make_gateway: GatewayFactory, sim: Any) -> GraphGateway:
    return make_gateway()

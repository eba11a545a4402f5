"""``downsync demo``: the whole service on embedded defaults, against the simulator's demo organisation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlmodel import select

from downsync.models import Tenant, utcnow

if TYPE_CHECKING:
    from downsync.auth import NewClient
    from ews_sim.app import Running

DEMO_DOMAIN = "demo.test"
DEMO_TENANT = "demo"
DEMO_GRAPH_TENANT = "demo-graph"


def _curl(base: str, token: str, event_id: str) -> str:
    return (
        f"curl -s -X POST '{base}/api/salesforce/scheduler/postback' -H 'Authorization: Bearer {token}' "
        f'-H \'Content-Type: application/json\' -d \'{{"id": "{event_id}", "organizerEmail": "alice@{DEMO_DOMAIN}", '
        f'"subject": "Demo", "startTime": "2030-01-07T10:00:00Z", "endTime": "2030-01-07T11:00:00Z", '
        f'"attendees": [{{"email": "bob@{DEMO_DOMAIN}", "isRequired": "true"}}]}}\'\n'
    )


def run_demo(host: str, port: int, sim_port: int, sim_tls_port: int = 0) -> None:
    from downsync.embedded import redis_answers, start_redis
    from downsync.observability import configure_logging
    from downsync.settings import get_settings

    configure_logging()
    settings = get_settings()
    state = Path(settings.state_dir)
    embedded = None
    if not redis_answers(settings.redis_url):
        embedded = start_redis(state / "redis")
        os.environ["DOWNSYNC_REDIS_URL"] = embedded.url
        click.echo(f"no Redis at {settings.redis_url}; started an embedded one at {embedded.url}", err=True)
    get_settings.cache_clear()
    settings = get_settings()

    from ews_sim.app import start_in_thread
    from ews_sim.config import OrgConfig
    from ews_sim.demo import seed_demo
    from ews_sim.server import Simulator
    from ews_sim.tls import generate

    config = OrgConfig()
    config.add_demo_domain(DEMO_DOMAIN)
    sim = Simulator(config)
    seed_demo(sim, DEMO_DOMAIN)
    # HTTPS beside HTTP: msal (the Graph tenant's tokens) accepts only https authorities.
    tls = generate(state / "tls")
    running = start_in_thread(sim, host="127.0.0.1", port=sim_port, tls=tls, tls_port=sim_tls_port)

    token, graph_token, client = _prepare_store(running)
    worker = subprocess.Popen(
        [sys.executable, "-m", "downsync.cli", "worker", "--concurrency=4"], env=os.environ.copy()
    )
    base = f"http://{host}:{port}"
    click.echo(
        f"\nSimulated organisation (every address @{DEMO_DOMAIN}): EWS {running.ews_url}, Graph {running.graph_url}"
        f"\n  control API {running.url}/_sim/\n"
        f"API: {base}  (docs {base}/docs)\n"
        f"Tenant {DEMO_TENANT!r} (EWS), token: {token}\n"
        f"Tenant {DEMO_GRAPH_TENANT!r} (Microsoft Graph, the same organisation), token: {graph_token}\n\nTry:\n"
        + _curl(base, token, "demo-1")
        + _curl(base, graph_token, "demo-2")
        + f"curl -s {running.url}/_sim/mailboxes/bob@{DEMO_DOMAIN}/calendar\n"
        + f"\nOAuth client of {DEMO_TENANT!r}: client_id={client.client_id} client_secret={client.client_secret}\n"
        f"curl -s -X POST '{base}/oauth/token' -d grant_type=refresh_token -d refresh_token={client.refresh_token} "
        f"-d client_id={client.client_id} -d client_secret={client.client_secret}\n",
        err=True,
    )
    try:
        import uvicorn

        uvicorn.run("api_shim.main:app", host=host, port=port, log_config=None, access_log=False)
    finally:
        worker.terminate()
        worker.wait(timeout=15)
        running.stop()
        if embedded is not None:
            embedded.stop()


def _prepare_store(running: Running) -> tuple[str, str, NewClient]:
    """Migrate, point the demo tenants (EWS and Graph) at this run's simulator, mint a token for each, and register
    an OAuth client of the EWS one."""
    from downsync import db
    from downsync.auth import create_client, create_token
    from downsync.backends import split, validate
    from downsync.settings import get_settings
    from downsync.tenants import encrypt_secret

    db.upgrade()
    assert running.ca_file is not None
    tenants = {
        DEMO_TENANT: ("ews", {"url": running.ews_url, "username": f"svc@{DEMO_DOMAIN}", "password": "demo"}),
        DEMO_GRAPH_TENANT: (
            "graph",
            {
                "azure_tenant": DEMO_DOMAIN,
                "client_id": "demo",
                "client_secret": "demo",
                "authority": running.tls_url,
                "graph_url": running.graph_url,
                "ca_bundle": running.ca_file.read_text(),
            },
        ),
    }
    tokens = []
    with db.session_scope() as session:
        for name, (backend, options) in tenants.items():
            plain, hidden = split(validate(backend, options))
            # The simulator's ports and certificate change with every run: the tenant follows them.
            tenant = session.exec(select(Tenant).where(Tenant.name == name)).first() or Tenant(name=name)
            tenant.backend, tenant.backend_options = backend, plain
            tenant.backend_secrets = {key: encrypt_secret(value) for key, value in hidden.items()}
            tenant.updated_at = utcnow()
            session.add(tenant)
            session.flush()
            tokens.append(create_token(session, name, ["availability", "sync"]))
        client = create_client(session, DEMO_TENANT, ["availability", "sync"], get_settings())
    return tokens[0], tokens[1], client

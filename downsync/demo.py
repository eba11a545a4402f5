"""``downsync demo``: the whole service on embedded defaults, against the simulator's demo organisation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

DEMO_DOMAIN = "demo.test"
DEMO_TENANT = "demo"


def run_demo(host: str, port: int, sim_port: int) -> None:
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

    config = OrgConfig()
    config.add_demo_domain(DEMO_DOMAIN)
    sim = Simulator(config)
    seed_demo(sim, DEMO_DOMAIN)
    running = start_in_thread(sim, host="127.0.0.1", port=sim_port)

    token = _prepare_store(running.ews_url)
    worker = subprocess.Popen(
        [sys.executable, "-m", "downsync.cli", "worker", "--concurrency=4"], env=os.environ.copy()
    )
    base = f"http://{host}:{port}"
    click.echo(
        f"\nEWS simulator: {running.ews_url}  (control API {running.url}/_sim/, every address @{DEMO_DOMAIN})\n"
        f"API: {base}  (docs {base}/docs)\nTenant {DEMO_TENANT!r}, token: {token}\n\nTry:\n"
        f"curl -s -X POST '{base}/api/salesforce/scheduler/postback' -H 'Authorization: Bearer {token}' "
        f'-H \'Content-Type: application/json\' -d \'{{"id": "demo-1", "organizerEmail": "alice@{DEMO_DOMAIN}", '
        f'"subject": "Demo", "startTime": "2030-01-07T10:00:00Z", "endTime": "2030-01-07T11:00:00Z", '
        f'"attendees": [{{"email": "bob@{DEMO_DOMAIN}", "isRequired": "true"}}]}}\'\n'
        f"curl -s {running.url}/_sim/mailboxes/bob@{DEMO_DOMAIN}/calendar\n",
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


def _prepare_store(ews_url: str) -> str:
    """Migrate, point the demo tenant at this run's simulator, and mint a fresh token."""
    from sqlmodel import select

    from downsync import db
    from downsync.models import Tenant, utcnow
    from downsync.tenants import create_tenant, create_token, encrypt_secret

    db.upgrade()
    options = {"url": ews_url, "username": f"svc@{DEMO_DOMAIN}", "password": "demo"}
    with db.session_scope() as session:
        found = session.exec(select(Tenant).where(Tenant.name == DEMO_TENANT)).first()
        if found is None:
            create_tenant(session, DEMO_TENANT, "ews", options)
        else:
            # The simulator's port may differ from the last run's.
            found.backend_options = {**found.backend_options, "url": ews_url}
            found.backend_secrets = {"password": encrypt_secret("demo")}
            found.updated_at = utcnow()
            session.add(found)
        return create_token(session, DEMO_TENANT, ["availability", "sync"])

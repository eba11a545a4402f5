"""``downsync demo``: the whole service on embedded defaults, against the simulator's demo organisation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import click
from sqlmodel import select

from downsync.models import Tenant, utcnow

if TYPE_CHECKING:
    from downsync.auth import NewClient
    from downsync.embedded import EmbeddedRedis
    from ews_sim.app import Running

DEMO_DOMAIN = "demo.test"
DEMO_TENANT = "demo"
DEMO_GRAPH_TENANT = "demo-graph"
# A database of its own on the local Redis: the demo's queue and rate limits never mix with another use of db 0.
DEMO_REDIS_URL = "redis://127.0.0.1:6379/15"
BANNER_END = "downsync demo is ready; Ctrl-C (or SIGTERM) stops every process it started."


def _curl(base: str, token: str, event_id: str) -> str:
    return (
        f"curl -s -X POST '{base}/api/salesforce/scheduler/postback' -H 'Authorization: Bearer {token}' "
        f'-H \'Content-Type: application/json\' -d \'{{"id": "{event_id}", "organizerEmail": "alice@{DEMO_DOMAIN}", '
        f'"subject": "Demo", "startTime": "2030-01-07T10:00:00Z", "endTime": "2030-01-07T11:00:00Z", '
        f'"attendees": [{{"email": "bob@{DEMO_DOMAIN}", "isRequired": "true"}}]}}\'\n'
    )


def run_demo(host: str, port: int, sim_port: int, sim_tls_port: int = 0) -> None:
    """Run the simulator, a Redis, the store, a worker and the API until SIGTERM or SIGINT; stop all of them then.

    uvicorn handles both signals while it serves and raises them again once it stopped; with the default SIGTERM
    handler that killed this process before it could stop the worker, which (with its Celery child) and the embedded
    Redis went on running. So both signals end the demo through ``SystemExit`` and the ``finally`` below."""
    from downsync.observability import configure_logging
    from downsync.settings import get_settings

    def stop_demo(signum: int, _: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop_demo)
    configure_logging()
    worker: subprocess.Popen[bytes] | None = None
    running: Running | None = None
    embedded: EmbeddedRedis | None = None
    try:
        embedded, redis_line = _choose_redis(Path(get_settings().state_dir))
        get_settings.cache_clear()
        running = _start_simulator(Path(get_settings().state_dir), sim_port, sim_tls_port)
        token, graph_token, client = _prepare_store(running)
        worker = subprocess.Popen(
            [sys.executable, "-m", "downsync.cli", "worker", "--concurrency=4"],
            env=os.environ.copy(),
            # Its own session: a terminal's Ctrl-C reaches the demo alone, which stops the worker in order (and the
            # whole group, the supervisor's Celery child included, is what a late kill aims at).
            start_new_session=True,
        )
        base = f"http://{host}:{port}"
        banner = _banner(base, running, redis_line, token, graph_token, client)
        threading.Thread(target=_announce_when_ready, args=(base, banner), name="demo-banner", daemon=True).start()
        import uvicorn

        uvicorn.run("api_shim.main:app", host=host, port=port, log_config=None, access_log=False)
    finally:
        # A second signal must not cut this short and leave a process behind; every step below is bounded.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        if worker is not None:
            _stop_worker(worker)
        if running is not None:
            running.stop()
        if embedded is not None:
            embedded.stop()
        click.echo(
            "downsync demo: stopped the API, the worker, the simulator" + (" and Redis" if embedded else ""), err=True
        )


def _choose_redis(state: Path) -> tuple[EmbeddedRedis | None, str]:
    """The demo's own Redis: database 15 of the local server (never db 0, which other software may use), else an
    embedded server of its own; an explicit DOWNSYNC_REDIS_URL is taken as given. Sets it for every process the demo
    starts, and returns the embedded server (to stop) and the banner's line saying which Redis it is."""
    from downsync.embedded import redis_answers, start_redis
    from downsync.settings import get_settings

    settings = get_settings()
    url = settings.redis_url if "redis_url" in settings.model_fields_set else DEMO_REDIS_URL
    if redis_answers(url):
        os.environ["DOWNSYNC_REDIS_URL"] = url
        if url == DEMO_REDIS_URL:
            return None, "Redis: database 15 of the local Redis (127.0.0.1:6379), the demo's own"
        # The URL may hold a password: say where it came from rather than print it.
        return None, f"Redis: DOWNSYNC_REDIS_URL, database {url.rsplit('/', 1)[-1] or '0'}"
    embedded = start_redis(state / "redis")
    os.environ["DOWNSYNC_REDIS_URL"] = embedded.url
    click.echo(f"no Redis answers for the demo; started an embedded one at {embedded.url}", err=True)
    return embedded, f"Redis: an embedded server at {embedded.url}, started for this demo and stopped with it"


def _start_simulator(state: Path, sim_port: int, sim_tls_port: int) -> Running:
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
    return start_in_thread(sim, host="127.0.0.1", port=sim_port, tls=tls, tls_port=sim_tls_port)


def _banner(base: str, running: Running, redis_line: str, token: str, graph_token: str, client: NewClient) -> str:
    return (
        f"\nSimulated organisation (every address @{DEMO_DOMAIN}): EWS {running.ews_url}, Graph {running.graph_url}"
        f"\n  control API {running.url}/_sim/\n"
        f"{redis_line}\n"
        f"API: {base}  (docs {base}/docs)\n"
        f"Tenant {DEMO_TENANT!r} (EWS), token: {token}\n"
        f"Tenant {DEMO_GRAPH_TENANT!r} (Microsoft Graph, the same organisation), token: {graph_token}\n\nTry:\n"
        + _curl(base, token, "demo-1")
        + _curl(base, graph_token, "demo-2")
        + f"curl -s {running.url}/_sim/mailboxes/bob@{DEMO_DOMAIN}/calendar\n"
        + f"\nOAuth client of {DEMO_TENANT!r}: client_id={client.client_id} client_secret={client.client_secret}\n"
        f"curl -s -X POST '{base}/oauth/token' -d grant_type=refresh_token -d refresh_token={client.refresh_token} "
        f"-d client_id={client.client_id} -d client_secret={client.client_secret}\n"
        f"\n{BANNER_END}\n"
    )


def _announce_when_ready(base: str, banner: str, timeout: float = 120) -> None:
    """Print the banner once the API answers /healthz and the worker answers a ping, so it comes after every start-up
    line and its curls work at once; after ``timeout`` it is printed anyway, saying what did not answer."""
    import requests

    from downsync.queue import make_celery
    from downsync.settings import get_settings

    celery = make_celery(get_settings())
    http = requests.Session()
    http.trust_env = False  # a proxy from the environment must not stand between the demo and itself
    api_up = worker_up = False
    deadline = time.monotonic() + timeout
    while not (api_up and worker_up) and time.monotonic() < deadline:
        try:
            api_up = api_up or http.get(f"{base}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            pass
        try:
            worker_up = worker_up or bool(celery.control.ping(timeout=0.5))
        except Exception:  # the broker not answering yet is the same as no answer
            pass
        time.sleep(0.2)
    late = [name for name, up in (("the API", api_up), ("the worker", worker_up)) if not up]
    note = f"(still waiting for {' and '.join(late)}; see the log above)\n" if late else ""
    click.echo(banner + note, err=True)


def _stop_worker(worker: subprocess.Popen[bytes], grace: float = 15) -> None:
    """SIGTERM to the supervisor, which passes it to Celery (a warm shutdown finishes the tasks in hand); whatever of
    its group is still there after ``grace`` seconds is killed, so no Celery process outlives the demo."""
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(worker.pid, signal.SIGKILL)  # the supervisor's Celery child, if the supervisor left it behind
    except ProcessLookupError:
        pass
    if worker.poll() is None:
        worker.wait(timeout=5)


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

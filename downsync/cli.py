"""The project's one command line, ``downsync``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from downsync.cli_access import client, token
from downsync.cli_support import check_store as _check_store
from downsync.cli_support import fail as _fail
from downsync.cli_webhooks import webhook

DEMO_DOMAIN = "demo.test"


@click.group()
def main() -> None:
    """downsync: Salesforce Lightning Scheduler to Exchange calendar sync."""


@main.command("ews-sim")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="YAML or JSON organisation: service_accounts, mailboxes, domains.",
)
@click.option(
    "--domain",
    "domains",
    multiple=True,
    help="Every address of DOMAIN is a mailbox; adds service account svc@DOMAIN / demo and Graph app demo / demo "
    "of tenant DOMAIN (repeatable).",
)
@click.option("--strict", is_flag=True, help="Validate every request (and response) against the EWS schema.")
@click.option(
    "--schema-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder holding messages.xsd and types.xsd (default: shared/ews-schema beside the checkout).",
)
@click.option("--build", default="15.1.2507.6", show_default=True, help="Exchange build reported in ServerVersionInfo.")
@click.option(
    "--capture-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write every request and response to this folder.",
)
@click.option(
    "--graph-schema-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder holding Graph's v1.0-Prod.csdl, for --strict (default: shared/graph-schema beside the checkout).",
)
@click.option("--tls", is_flag=True, help="Serve HTTPS with a CA and certificate generated for 127.0.0.1/localhost.")
@click.option(
    "--tls-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where --tls writes ca.pem, server.pem and server.key (default: a new temporary folder).",
)
@click.option(
    "--cert",
    "cert_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve HTTPS with this certificate (PEM, with --key) instead of a generated one.",
)
@click.option(
    "--key", "key_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The key of --cert (PEM)."
)
def ews_sim(
    host: str,
    port: int,
    config_file: Path | None,
    domains: tuple[str, ...],
    strict: bool,
    schema_dir: Path | None,
    build: str,
    capture_dir: Path | None,
    graph_schema_dir: Path | None,
    tls: bool,
    tls_dir: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
) -> None:
    """Run the simulator: an Exchange organisation that exchangelib (EWS) and Graph clients (msal, REST) talk to."""
    import tempfile

    from ews_sim.app import serve
    from ews_sim.config import ConfigError, OrgConfig
    from ews_sim.graph.schema import CSDL_FILE, GraphSchema, default_graph_schema_dir
    from ews_sim.schema import EwsSchema, default_schema_dir
    from ews_sim.server import Simulator
    from ews_sim.tls import TlsFiles, generate

    if (cert_file is None) != (key_file is None):
        raise click.UsageError("--cert and --key go together")

    try:
        config = OrgConfig.load(config_file) if config_file else OrgConfig()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    for domain in domains:
        config.add_demo_domain(domain)
    schema = None
    if strict:
        configured = os.environ.get("DOWNSYNC_EWS_SCHEMA_DIR")
        # An explicit location that lacks the schema is a mistake, not a cue to fall back to another copy.
        directory = schema_dir or (Path(configured) if configured else default_schema_dir())
        if directory is None or not (directory / "messages.xsd").is_file():
            where = f" ({directory} has no messages.xsd)" if directory is not None else ""
            raise click.UsageError(
                f"--strict needs the EWS schema{where}: pass --schema-dir or set DOWNSYNC_EWS_SCHEMA_DIR"
            )
        schema = EwsSchema(directory)
    graph_schema = None
    if strict:
        graph_dir = graph_schema_dir or default_graph_schema_dir()
        if graph_dir is not None and (graph_dir / CSDL_FILE).is_file():
            graph_schema = GraphSchema.load(graph_dir)
        else:
            click.echo(f"Graph strictness skipped: no {CSDL_FILE} (pass --graph-schema-dir)", err=True)
    sim = Simulator(config, build=build, schema=schema, capture_dir=capture_dir, graph_schema=graph_schema)
    files = None
    if cert_file is not None and key_file is not None:
        files = TlsFiles(cert_file=cert_file, key_file=key_file)
    elif tls:
        files = generate(tls_dir or Path(tempfile.mkdtemp(prefix="ews-sim-tls-")))
    base = f"{'https' if files else 'http'}://{host}:{port}"
    click.echo(f"EWS simulator on {base}/EWS/Exchange.asmx (strict={strict})", err=True)
    click.echo(f"Graph on {base}/v1.0, tokens from {base}/<tenant>/oauth2/v2.0/token", err=True)
    if files is not None and files.ca_file is not None:
        click.echo(f"CA file: {files.ca_file}", err=True)
    serve(sim, host, port, ssl_context=files.server_context() if files else None)


@main.group()
def db() -> None:
    """The store's schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database named by DOWNSYNC_DATABASE_URL to the latest schema."""
    from downsync import db as store
    from downsync.settings import get_settings

    revision = store.upgrade()
    url = store.get_engine().url.render_as_string(hide_password=True)
    click.echo(f"database {url} is at migration {revision}")
    assert get_settings()


@main.group()
def tenant() -> None:
    """Tenants and their Exchange connection."""


def _backend_params() -> list[click.Option]:
    """One option per setting of every backend, named as the backend declares (``--ews-url``, ``--client-id``)."""
    from downsync.backends import backends

    params = []
    for spec in backends().values():
        for name, info in spec.options.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            flag = str(extra.get("option") or f"--{spec.name}-{name.replace('_', '-')}")
            kind = click.Path(exists=True, dir_okay=False, path_type=Path) if extra.get("file") else str
            params.append(
                click.Option(
                    [flag, f"{spec.name}__{name}"],
                    type=kind,
                    default=None,
                    help=f"[{spec.name}] {info.description or name}" + (" (a file)" if extra.get("file") else ""),
                )
            )
    return params


def _backend_values(backend: str, given: dict[str, object]) -> dict[str, object]:
    """The chosen backend's settings from the options given; another backend's option is a mistake."""
    from downsync.backends import backend as lookup
    from downsync.backends import secret_fields

    spec = lookup(backend)
    values: dict[str, object] = {}
    for key, value in given.items():
        owner, _, name = key.partition("__")
        if value is None:
            continue
        if owner != backend:
            flag = next(p.opts[0] for p in _backend_params() if p.name == key)
            _fail(f"{flag} is a setting of the {owner} backend, not of {backend}")
        values[name] = value.read_text() if isinstance(value, Path) else value
    for name in secret_fields(spec.options):
        field = spec.options.model_fields[name]
        if name not in values and field.is_required():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            values[name] = click.prompt(str(extra.get("option", name)).lstrip("-"), hide_input=True)
    return values


def _tenant_create_command(func: Any) -> Any:
    for param in reversed(_backend_params()):
        func.__click_params__ = [*getattr(func, "__click_params__", []), param]
    return func


@tenant.command("create")
@click.argument("name")
@click.option(
    "--backend",
    default="ews",
    show_default=True,
    help="The calendar backend: ews (Exchange Server), graph (Microsoft 365), memory (tests).",
)
@click.option(
    "--busy-types",
    default="Busy,OOF,Tentative,WorkingElsewhere",
    show_default=True,
    help="Free/busy states that availability reports as unavailable.",
)
@click.option(
    "--availability-on-error",
    type=click.Choice(["closed", "free"]),
    default="closed",
    show_default=True,
    help="A failed availability lookup shows the attendee busy (closed) or free.",
)
@click.option("--rate-limit-writes", help="This tenant's write limit, e.g. 100/second (default: the setting).")
@click.option("--rate-limit-availability", help="This tenant's availability limit, e.g. 20/second.")
@_tenant_create_command
def tenant_create(
    name: str,
    backend: str,
    busy_types: str,
    availability_on_error: str,
    rate_limit_writes: str | None,
    rate_limit_availability: str | None,
    **given: object,
) -> None:
    """Add a tenant on a calendar backend, with that backend's settings."""
    from downsync.backends import BackendError
    from downsync.db import session_scope
    from downsync.tenants import TenantError, create_tenant

    _check_store()
    try:
        options = _backend_values(backend, given)
        with session_scope() as session:
            created = create_tenant(
                session,
                name,
                backend,
                options,
                busy_types=busy_types,
                availability_on_error=availability_on_error,
                rate_limit_writes=rate_limit_writes,
                rate_limit_availability=rate_limit_availability,
            )
            click.echo(f"tenant {created.name} created (id {created.id}, backend {created.backend})")
    except (TenantError, BackendError) as exc:
        _fail(str(exc))


@tenant.command("check")
@click.argument("name")
@click.option("--mailbox", help="A mailbox to try (EWS default: the service account's own).")
def tenant_check(name: str, mailbox: str | None) -> None:
    """Try the tenant's credentials (and a mailbox) and say exactly what is wrong."""
    from downsync.backends import backend
    from downsync.core.converge import TenantUnusable
    from downsync.db import session_scope
    from downsync.tenants import TenantError, gateway_for, tenant_by_name

    _check_store()
    try:
        with session_scope() as session:
            found = tenant_by_name(session, name)
            spec = backend(found.backend)
            gateway = gateway_for(found)
    except (TenantError, TenantUnusable) as exc:
        _fail(str(exc))
    if spec.check is None:
        _fail(f"the {spec.name} backend has no check")
    problems = spec.check(gateway, mailbox)  # type: ignore[misc]
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        sys.exit(1)
    tried = f"{mailbox}'s calendar reachable" if mailbox else "credentials accepted; --mailbox tries a mailbox too"
    click.echo(f"tenant {name}: OK ({tried})")


@tenant.command("list")
def tenant_list() -> None:
    """The tenants, their backends and settings (never their secrets)."""
    from sqlmodel import select

    from downsync.db import session_scope
    from downsync.models import Tenant

    _check_store()
    with session_scope() as session:
        for row in session.exec(select(Tenant).order_by(Tenant.name)):
            options = " ".join(f"{k}={v}" for k, v in sorted(row.backend_options.items()))
            click.echo(f"{row.name}\t{row.backend}\t{options}")


def _few_malloc_arenas() -> None:
    """Two malloc arenas, unless the operator set MALLOC_ARENA_MAX: glibc gives each allocating thread its own (up to
    8 per core), and the API answers from a pool of 40 threads, so arenas are much of what its RSS grows by."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    os.environ["MALLOC_ARENA_MAX"] = "2"  # uvicorn's worker processes read it when they start
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(-8, 2)  # M_ARENA_MAX, for this process, before its threads
    except (OSError, AttributeError, TypeError):
        pass  # not glibc: nothing to limit


@main.command("api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes.")
def api(host: str, port: int, workers: int) -> None:
    """Serve the HTTP API (uvicorn)."""
    import uvicorn

    from downsync.observability import configure_logging

    configure_logging()
    _check_store()
    _few_malloc_arenas()
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes answer /metrics in turn: each must report them all (prometheus-client's multiprocess
        # mode), from a folder emptied at start so no dead process's figures linger.
        import shutil

        from downsync.settings import get_settings

        folder = Path(get_settings().state_dir) / "prometheus"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    uvicorn.run("api_shim.main:app", host=host, port=port, workers=workers, log_config=None, access_log=False)


@main.command("worker", context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option(
    "--supervise/--no-supervise",
    default=True,
    show_default=True,
    help="Restart the Celery worker when it dies (e.g. Celery giving up on a lost broker).",
)
@click.option(
    "--dispatch/--no-dispatch",
    default=True,
    show_default=True,
    help="Run the dispatcher beside the tasks; --no-dispatch where one `downsync scheduler` runs it for all.",
)
@click.pass_context
def worker(ctx: click.Context, supervise: bool, dispatch: bool) -> None:
    """Run a Celery worker; Celery's own options (--concurrency, --pool, -Q, ...) pass through."""
    # Before anything reads the settings: a worker retries whatever a dead pooled connection fails (an operator's
    # DOWNSYNC_DATABASE_PRE_PING wins).
    os.environ.setdefault("DOWNSYNC_DATABASE_PRE_PING", "false")
    _check_store()
    child = [sys.executable, "-m", "worker", *([] if dispatch else ["--no-dispatch"]), *ctx.args]
    sys.stdout.flush()
    sys.stderr.flush()
    if supervise:
        # The supervisor only waits and passes signals on: exec a bare Python for it, so it does not keep the
        # ~70 MB this command imported (click, the backends, SQLAlchemy, Alembic) for the worker's whole life.
        # Same pid, so systemd's or Kubernetes' SIGTERM still reaches it.
        os.execv(sys.executable, [sys.executable, "-m", "downsync.supervise", *child])
    # The worker is its own module (``python -m worker``), started in place of this process.
    os.execv(sys.executable, child)


@main.command("scheduler")
def scheduler() -> None:
    """Run the dispatcher alone (no tasks): exactly one per deployment, beside workers started with --no-dispatch.

    It hands due work to the broker each second (retries after their back-off, work whose message or worker was
    lost) and closes jobs whose closer was interrupted. A second one by mistake is harmless (the store hands each
    placement to one dispatcher: FOR UPDATE SKIP LOCKED), only wasteful. Stops on SIGTERM or SIGINT.
    """
    from downsync.observability import configure_logging

    configure_logging()
    _check_store()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "worker", "scheduler"])


@main.command("retry")
@click.option("--job", "job_id", help="Re-run the failed mailboxes of this job.")
@click.option("--since", help="Re-run the failed mailboxes of every job created since this ISO 8601 time.")
@click.option("--tenant", "tenant_name", help="With --since: only this tenant's jobs.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Show progress until they finish.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait at most.")
def retry(job_id: str | None, since: str | None, tenant_name: str | None, wait: bool, timeout: float) -> None:
    """Re-run failed mailboxes, with a progress bar."""
    from downsync.retry import RetryError, reopen, wait_for_results

    if bool(job_id) == bool(since):
        _fail("give either --job ID or --since TIME")
    try:
        result_ids, placements = reopen(job_id=job_id, since=since, tenant_name=tenant_name)
    except RetryError as exc:
        _fail(str(exc))
    click.echo(f"re-running {len(result_ids)} mailboxes ({len(placements)} placements enqueued)")
    if not wait or not result_ids:
        return
    with click.progressbar(length=len(result_ids), label="finished") as bar:
        codes = wait_for_results(result_ids, timeout, bar.update)
    failed = {code for code in codes.values() if code not in ("NoError", "Pending")}
    pending = sum(1 for code in codes.values() if code == "Pending")
    click.echo(f"{len(codes) - pending} finished, {pending} still pending; codes: {sorted(failed) or ['NoError']}")


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int, help="Port of the API.")
@click.option("--sim-port", default=8765, show_default=True, type=int, help="Port of the simulator (HTTP: EWS).")
@click.option(
    "--sim-tls-port", default=8766, show_default=True, type=int, help="Port of the simulator over HTTPS (Graph)."
)
def demo(host: str, port: int, sim_port: int, sim_tls_port: int) -> None:
    """Run everything on embedded defaults: simulator, Redis, store, API, worker, a demo tenant and token."""
    from downsync.demo import run_demo

    run_demo(host=host, port=port, sim_port=sim_port, sim_tls_port=sim_tls_port)


main.add_command(token)
main.add_command(client)
main.add_command(webhook)


if __name__ == "__main__":
    main()

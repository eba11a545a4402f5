"""The project's one command line, ``downsync``."""

from __future__ import annotations

import os
from pathlib import Path

import click

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
    help="Every address of DOMAIN is a mailbox; adds service account svc@DOMAIN / demo (repeatable).",
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
def ews_sim(
    host: str,
    port: int,
    config_file: Path | None,
    domains: tuple[str, ...],
    strict: bool,
    schema_dir: Path | None,
    build: str,
    capture_dir: Path | None,
) -> None:
    """Run the EWS simulator: an Exchange that the real exchangelib talks to."""
    from ews_sim.app import serve
    from ews_sim.config import ConfigError, OrgConfig
    from ews_sim.schema import EwsSchema, default_schema_dir
    from ews_sim.server import Simulator

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
    sim = Simulator(config, build=build, schema=schema, capture_dir=capture_dir)
    click.echo(f"EWS simulator on http://{host}:{port}/EWS/Exchange.asmx (strict={strict})", err=True)
    serve(sim, host, port)


@main.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--sim-port", default=8765, show_default=True, type=int, help="Port of the EWS simulator.")
def demo(host: str, sim_port: int) -> None:
    """Run on embedded defaults: the EWS simulator with a demo organisation (demo.test) and sample busy time."""
    from ews_sim.app import serve
    from ews_sim.config import OrgConfig
    from ews_sim.demo import seed_demo
    from ews_sim.server import Simulator

    config = OrgConfig()
    config.add_demo_domain(DEMO_DOMAIN)
    sim = Simulator(config)
    seed_demo(sim)
    url = f"http://{host}:{sim_port}"
    click.echo(
        f"EWS simulator: {url}/EWS/Exchange.asmx (service account svc@{DEMO_DOMAIN} / demo; "
        f"every address @{DEMO_DOMAIN} is a mailbox)\n"
        f"Try: curl -s {url}/_sim/mailboxes/alice@{DEMO_DOMAIN}/calendar",
        err=True,
    )
    serve(sim, host, sim_port)

"""compose.yaml and the image stay in step with the code: every command they run is one the CLI accepts."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml

from downsync.cli import main

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_runs_the_whole_service() -> None:
    assert {"redis", "postgres", "migrate", "api", "worker", "flower", "ews-sim"} <= set(COMPOSE["services"])
    api = COMPOSE["services"]["api"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    env = COMPOSE["x-downsync"]["environment"]
    assert env["DOWNSYNC_DATABASE_URL"].startswith("postgresql+psycopg://")


@pytest.mark.parametrize("service", ["migrate", "api", "worker", "ews-sim"])
def test_compose_commands_parse(service: str) -> None:
    command = COMPOSE["services"][service]["command"]
    assert command[0] == "downsync"
    args = command[1:]
    # Resolving the subcommand and parsing its options catches a renamed command or option.
    context = main.make_context("downsync", list(args), resilient_parsing=False)
    name, sub, rest = main.resolve_command(context, context.protected_args + context.args)
    assert sub is not None
    if isinstance(sub, click.Group):
        name, sub, rest = sub.resolve_command(context, rest)
    sub.make_context(name, rest, parent=context)


def test_the_image_installs_every_package() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for package in ("downsync", "api_shim", "worker", "ews_sim"):
        assert f"COPY {package} ./{package}" in dockerfile

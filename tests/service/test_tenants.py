"""Tenants on either backend: created from the command line, checked against the organisation, secrets kept secret."""

from __future__ import annotations

import sqlite3
import uuid

import psycopg

from tests.support.stack import Stack


def new_name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def test_tenant_check_says_what_is_wrong(stack: Stack) -> None:
    good = new_name()
    stack.create_tenant(good)
    ok = stack.run_cli("tenant", "check", good, "--mailbox", "bob@contoso.com")
    assert "OK" in ok.stdout and "bob@contoso.com" in ok.stdout
    bad = new_name()
    stack.create_tenant(bad, secret="wrong")
    refused = stack.run_cli("tenant", "check", bad, "--mailbox", "bob@contoso.com", check=False)
    assert refused.returncode == 1
    expected = "client secret or certificate" if stack.dialect.name == "graph" else "credentials (401)"
    assert expected in refused.stderr, refused.stderr
    limited = new_name()
    stack.create_tenant(limited, credentials="limited")
    outside = stack.run_cli("tenant", "check", limited, "--mailbox", "carol@contoso.com", check=False)
    assert outside.returncode == 1
    expected = "application access policy" if stack.dialect.name == "graph" else "ErrorImpersonateUserDenied"
    assert expected in outside.stderr, outside.stderr
    unknown = stack.run_cli("tenant", "check", good, "--mailbox", "ghost@contoso.com", check=False)
    assert unknown.returncode == 1 and "ErrorMailRecipientNotFound" in unknown.stderr


def test_secrets_are_stored_encrypted_and_never_listed(stack: Stack) -> None:
    name = new_name()
    secret = f"s3cret-{uuid.uuid4().hex}"
    stack.create_tenant(name, secret=secret)
    listed = stack.run_cli("tenant", "list").stdout
    assert name in listed and secret not in listed and stack.dialect.name in listed
    query = "SELECT backend_options, backend_secrets FROM tenant WHERE name = %s"
    if stack.database_url.startswith("sqlite"):
        with sqlite3.connect(stack.database_url.removeprefix("sqlite:///")) as db:
            row = db.execute(query.replace("%s", "?"), (name,)).fetchone()
    else:
        url = stack.database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(url) as db:
            row = db.execute(query, (name,)).fetchone()
    assert row is not None and secret not in str(row)


def test_options_of_another_backend_are_refused(stack: Stack) -> None:
    name = new_name()
    mixed = stack.run_cli(
        "tenant", "create", name, "--backend", "graph", "--ews-url", "https://x/EWS/Exchange.asmx", check=False
    )
    assert mixed.returncode == 1 and "--ews-url is a setting of the ews backend, not of graph" in mixed.stderr
    both = stack.run_cli(
        "tenant",
        "create",
        name,
        "--backend",
        "graph",
        "--azure-tenant",
        "contoso.com",
        "--client-id",
        "x",
        "--client-secret",
        "y",
        "--authority",
        "http://plain",
        check=False,
    )
    assert both.returncode == 1 and "https://" in both.stderr
    assert name not in stack.run_cli("tenant", "list").stdout

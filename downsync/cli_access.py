"""``downsync token`` and ``downsync client``: who may call the API, shown once, listed, revoked."""

from __future__ import annotations

import click

from downsync.cli_support import check_store, fail

SCOPES_HELP = "Comma-separated: availability, sync."


def _scopes(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"  # type: ignore[attr-defined]


@click.group()
def token() -> None:
    """API tokens: long-lived bearer tokens, and the access tokens OAuth clients were given."""


@token.command("create")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--scopes", default="availability,sync", show_default=True, help=SCOPES_HELP)
def token_create(tenant_name: str, scopes: str) -> None:
    """Print a new bearer token for the tenant; it is shown once and stored hashed."""
    from downsync.auth import create_token
    from downsync.db import session_scope
    from downsync.tenants import TenantError

    check_store()
    try:
        with session_scope() as session:
            click.echo(create_token(session, tenant_name, _scopes(scopes)))
    except TenantError as exc:
        fail(str(exc))


@token.command("list")
@click.option("--tenant", "tenant_name", help="Only this tenant's.")
def token_list(tenant_name: str | None) -> None:
    """Every token: id, tenant, client, scopes, created, last used, expires, revoked (never the token itself)."""
    from downsync.auth import list_tokens
    from downsync.db import session_scope

    check_store()
    with session_scope() as session:
        click.echo("id\ttenant\tclient\tscopes\tcreated\tlast_used\texpires\trevoked")
        for row, tenant, client_id in list_tokens(session, tenant_name):
            click.echo(
                f"{row.id}\t{tenant}\t{client_id or '-'}\t{row.scopes}\t{_when(row.created_at)}\t"
                f"{_when(row.last_used_at)}\t{_when(row.expires_at)}\t{_when(row.revoked_at)}"
            )


@token.command("revoke")
@click.argument("token_id", type=int)
def token_revoke(token_id: int) -> None:
    """Revoke a token by its id (from ``token list``): every API process refuses it from the next request."""
    from downsync.auth import revoke_token
    from downsync.db import session_scope
    from downsync.models import utcnow

    check_store()
    with session_scope() as session:
        if not revoke_token(session, token_id, utcnow()):
            fail(f"no live token with id {token_id}")
    click.echo(f"token {token_id} revoked")


@click.group()
def client() -> None:
    """OAuth 2.0 / HMAC clients of a tenant."""


@client.command("create")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--scopes", default="availability,sync", show_default=True, help=SCOPES_HELP)
def client_create(tenant_name: str, scopes: str) -> None:
    """Print a new client's id, secret and first refresh token; the secret and token are shown once."""
    from downsync.auth import create_client
    from downsync.db import session_scope
    from downsync.settings import get_settings
    from downsync.tenants import TenantError

    check_store()
    try:
        with session_scope() as session:
            created = create_client(session, tenant_name, _scopes(scopes), get_settings())
    except TenantError as exc:
        fail(str(exc))
    click.echo(f"client_id={created.client_id}")
    click.echo(f"client_secret={created.client_secret}")
    click.echo(f"refresh_token={created.refresh_token}")


@client.command("list")
@click.option("--tenant", "tenant_name", help="Only this tenant's.")
def client_list(tenant_name: str | None) -> None:
    """Every client: id, tenant, scopes, created, last used, revoked (never the secret)."""
    from downsync.auth import list_clients
    from downsync.db import session_scope

    check_store()
    with session_scope() as session:
        click.echo("client_id\ttenant\tscopes\tcreated\tlast_used\trevoked")
        for row, tenant in list_clients(session, tenant_name):
            click.echo(
                f"{row.client_id}\t{tenant}\t{row.scopes}\t{_when(row.created_at)}\t{_when(row.last_used_at)}\t"
                f"{_when(row.revoked_at)}"
            )


@client.command("revoke")
@click.argument("client_id")
def client_revoke(client_id: str) -> None:
    """Revoke a client: its refresh tokens, access tokens and signatures stop working at once."""
    from downsync.auth import revoke_client
    from downsync.db import session_scope
    from downsync.models import utcnow

    check_store()
    with session_scope() as session:
        if not revoke_client(session, client_id, utcnow()):
            fail(f"no client {client_id}")
    click.echo(f"client {client_id} revoked")

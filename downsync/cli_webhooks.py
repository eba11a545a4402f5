"""``downsync webhook``: callback URLs told, signed, when jobs become final; secrets shown once."""

from __future__ import annotations

import click

from downsync.cli_support import check_store, fail


def _when(value: object) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"  # type: ignore[attr-defined]


@click.group()
def webhook() -> None:
    """Result webhooks: register, list, rotate secrets, delete, read the delivery log."""


@webhook.command("create")
@click.option("--tenant", "tenant_name", required=True)
@click.option("--url", required=True, help="https (http outside production); a public address unless allowed.")
@click.option("--client", "client_id", help="The tenant's API client this webhook belongs to (stops if it is revoked).")
@click.option("--each-result", is_flag=True, help="Also POST the job when each mailbox result becomes final.")
def webhook_create(tenant_name: str, url: str, client_id: str | None, each_result: bool) -> None:
    """Register a callback URL; prints its id and its signing secret, shown this once."""
    from downsync.db import session_scope
    from downsync.models import utcnow
    from downsync.settings import get_settings
    from downsync.tenants import TenantError, tenant_by_name
    from downsync.webhooks import subscriptions
    from downsync.webhooks.urls import UrlRefused

    check_store()
    try:
        with session_scope() as session:
            tenant = tenant_by_name(session, tenant_name)
            assert tenant.id is not None
            client = subscriptions.client_of(session, tenant.id, client_id) if client_id else None
            created, secret = subscriptions.create(
                session, tenant.id, url, get_settings(), utcnow(), client=client, each_result=each_result
            )
            click.echo(f"id={created.id}")
            click.echo(f"secret={secret}")
    except UrlRefused as exc:
        fail(f"the URL {exc}")
    except (TenantError, subscriptions.SubscriptionError) as exc:
        fail(str(exc))


@webhook.command("list")
@click.option("--tenant", "tenant_name", help="Only this tenant's.")
def webhook_list(tenant_name: str | None) -> None:
    """Every webhook: id, tenant, client, each result, url, created, rotated, pending deliveries (never a secret)."""
    from downsync.db import session_scope
    from downsync.webhooks import service, subscriptions

    check_store()
    with session_scope() as session:
        rows = subscriptions.listing(session, tenant_name=tenant_name)
        pending = service.pending_counts(session, [row.subscription.id for row in rows])
        click.echo("id\ttenant\tclient\teach_result\turl\tcreated\trotated\tpending")
        for row in rows:
            sub = row.subscription
            click.echo(
                f"{sub.id}\t{row.tenant}\t{row.client_id or '-'}\t{str(sub.each_result).lower()}\t{sub.url}\t"
                f"{_when(sub.created_at)}\t{_when(sub.rotated_at)}\t{pending.get(sub.id, 0)}"
            )


@webhook.command("rotate")
@click.argument("webhook_id")
@click.option(
    "--grace-seconds",
    type=float,
    help="How long the previous secret still signs (default: DOWNSYNC_WEBHOOK_SECRET_GRACE_SECONDS).",
)
def webhook_rotate(webhook_id: str, grace_seconds: float | None) -> None:
    """Issue a new secret (printed once); deliveries carry both signatures until the old one expires."""
    from downsync.db import session_scope
    from downsync.models import utcnow
    from downsync.settings import get_settings
    from downsync.webhooks import subscriptions

    check_store()
    with session_scope() as session:
        found = subscriptions.get(session, None, webhook_id)
        if found is None:
            fail(f"no webhook {webhook_id}")
        grace = get_settings().webhook_secret_grace_seconds if grace_seconds is None else grace_seconds
        secret = subscriptions.rotate(session, found, utcnow(), grace)
        expires = found.previous_expires_at
        click.echo(f"id={found.id}")
        click.echo(f"secret={secret}")
        click.echo(f"previous_secret_expires={_when(expires)}")


@webhook.command("retire")
@click.argument("webhook_id")
def webhook_retire(webhook_id: str) -> None:
    """Stop signing with the previous secret now (the receiver has the new one)."""
    from downsync.db import session_scope
    from downsync.webhooks import subscriptions

    check_store()
    with session_scope() as session:
        found = subscriptions.get(session, None, webhook_id)
        if found is None:
            fail(f"no webhook {webhook_id}")
        had = subscriptions.retire_previous(session, found)
    click.echo(f"webhook {webhook_id}: previous secret retired" if had else f"webhook {webhook_id}: no previous secret")


@webhook.command("delete")
@click.argument("webhook_id")
def webhook_delete(webhook_id: str) -> None:
    """Delete a webhook with its secrets and delivery log; nothing more is sent to it."""
    from downsync.db import session_scope
    from downsync.webhooks import subscriptions

    check_store()
    with session_scope() as session:
        found = subscriptions.get(session, None, webhook_id)
        if found is None:
            fail(f"no webhook {webhook_id}")
        subscriptions.remove(session, found)
    click.echo(f"webhook {webhook_id} deleted")


@webhook.command("deliveries")
@click.argument("webhook_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
def webhook_deliveries(webhook_id: str, limit: int) -> None:
    """The newest deliveries: id, event, job, state, attempts, last status, next attempt, last error."""
    from downsync.db import session_scope
    from downsync.webhooks import service, subscriptions

    check_store()
    with session_scope() as session:
        if subscriptions.get(session, None, webhook_id) is None:
            fail(f"no webhook {webhook_id}")
        page = service.deliveries(session, webhook_id, None, None, limit)
        click.echo("id\tevent\tjob\tstate\tattempts\tlast_status\tnext_attempt\tlast_error")
        for row in page.deliveries:
            click.echo(
                f"{row.id}\t{row.event}\t{row.job_id}\t{row.state}\t{row.attempts}\t{row.last_status or '-'}\t"
                f"{_when(row.due_at)}\t{row.last_error or '-'}"
            )

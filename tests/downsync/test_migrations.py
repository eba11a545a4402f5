"""Upgrading a store written by the previous release keeps every tenant, its password and its unfinished work."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from downsync.backends.ews import EwsOptions
from downsync.db import alembic_config, head_revision
from downsync.models import Tenant
from downsync.tenants import backend_options, encrypt_secret
from tests.support.stack import database, postgres_answers

NOW = datetime(2026, 11, 1, tzinfo=UTC).isoformat(sep=" ")


@pytest.fixture(params=["embedded", "machine"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "machine" and not postgres_answers():
        pytest.skip("the machine's PostgreSQL does not answer; SQLite covers this test")
    with database(request.param, tmp_path) as db:
        yield db.url


def test_0004_moves_ews_settings_into_backend_options_and_keeps_work_due(store_url: str) -> None:
    url = store_url
    command.upgrade(alembic_config(url), "0003")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    password = encrypt_secret("s3cret")
    with engine.begin() as db:
        db.execute(
            sa.text(
                "INSERT INTO tenant (id, name, ews_url, ews_username, ews_password_encrypted, ews_auth_type, ews_build,"
                " busy_types, availability_on_error, created_at) VALUES (1, 'acme', 'https://mail.acme.test/EWS/"
                "Exchange.asmx', 'svc@acme.test', :password, 'ntlm', '15.1.2507.6', 'Busy', 'closed', :now)"
            ),
            {"password": password, "now": NOW},
        )
        db.execute(
            sa.text(
                "INSERT INTO event (id, tenant_id, kind, event_id, version, desired, present, updated_at)"
                " VALUES (1, 1, 'postback', 'e1', 2, '{}', '[\"a@acme.test\"]', :now)"
            ),
            {"now": NOW},
        )
        for pid, done in ((1, 1), (2, 2)):
            db.execute(
                sa.text(
                    "INSERT INTO placement (id, tenant_id, event_pk, mailbox, target_version, done_version, attempts,"
                    " updated_at) VALUES (:id, 1, 1, :mailbox, 2, :done, 0, :now)"
                ),
                {"id": pid, "mailbox": f"m{pid}@acme.test", "done": done, "now": NOW},
            )
        db.execute(
            sa.text(
                "INSERT INTO job (id, tenant_id, kind, operation, event_pk, event_id, version, correlation_id, state,"
                " created_at) VALUES ('j1', 1, 'postback', 'update', 1, 'e1', 2, 'c', 'pending', :now)"
            ),
            {"now": NOW},
        )
        db.execute(
            sa.text(
                "INSERT INTO jobresult (job_id, tenant_id, position, email, mailbox, error_code, attempts, updated_at)"
                " VALUES ('j1', 1, 0, 'M1@acme.test', 'm1@acme.test', 'Pending', 0, :now)"
            ),
            {"now": NOW},
        )
    command.upgrade(alembic_config(url), "head")

    with engine.connect() as db:
        assert db.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        tenant = db.execute(sa.text("SELECT backend, backend_options, backend_secrets, tag_id FROM tenant")).one()
        due = dict(db.execute(sa.text("SELECT id, due_at IS NOT NULL FROM placement")).all())
        result = db.execute(sa.text("SELECT event_pk, version FROM jobresult")).one()
    assert tenant.backend == "ews" and len(tenant.tag_id) == 32

    def loaded(value: object) -> dict[str, str]:
        return json.loads(value) if isinstance(value, str) else value  # type: ignore[return-value]

    restored = Tenant(
        name="acme",
        backend="ews",
        backend_options=loaded(tenant.backend_options),
        backend_secrets=loaded(tenant.backend_secrets),
    )
    options = backend_options(restored)
    assert isinstance(options, EwsOptions)
    assert (options.url, options.username, options.auth_type) == (
        "https://mail.acme.test/EWS/Exchange.asmx",
        "svc@acme.test",
        "ntlm",
    )
    assert options.password.get_secret_value() == "s3cret"
    assert due == {1: True, 2: False}  # the unfinished placement is due at once, the finished one rests
    assert tuple(result) == (1, 2)


def test_the_migrations_build_the_store_the_models_describe(store_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import downsync.models  # noqa: F401  (every table on the metadata)

    command.upgrade(alembic_config(store_url), "head")
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    finally:
        engine.dispose()
    # Type and nullability differences of SQLite aside, an index or table the models name must exist and vice versa.
    structural = [d for d in differences if isinstance(d, tuple) and d[0].startswith(("add_", "remove_"))]
    assert structural == []

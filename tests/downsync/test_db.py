"""The store check reads revisions without Alembic, and answers as Alembic would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from downsync.db import NotMigratedError, alembic_config, check_migrated, current_revision, head_revision


def test_the_head_is_alembics() -> None:
    assert head_revision() == ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def test_the_current_revision_is_alembics_at_every_step(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    assert current_revision(engine) is None
    with pytest.raises(NotMigratedError, match="at migration none"):
        check_migrated(engine)
    script = ScriptDirectory.from_config(alembic_config(url))
    for revision in reversed([r.revision for r in script.walk_revisions()]):
        command.upgrade(alembic_config(url), revision)
        with engine.connect() as connection:
            assert current_revision(engine) == MigrationContext.configure(connection).get_current_revision()
    check_migrated(engine)


def test_no_long_lived_process_imports_alembic() -> None:
    """The API, the worker and the scheduler check the store without it (11 MB each, for their whole life)."""
    code = (
        "import sys, api_shim.app, worker.celery_app, worker.tasks, worker.scheduler, downsync.cli; "
        "print(sorted(m for m in ('alembic', 'mako') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert found.returncode == 0 or "NotMigratedError" in found.stderr, found.stderr
    if found.returncode == 0:
        assert found.stdout.strip() == "[]"


def test_the_pool_pre_pings_unless_the_settings_say_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    from downsync.db import get_engine
    from downsync.settings import get_settings

    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # never connected: the pool is only built
    try:
        for value, expected in (("true", True), ("false", False)):
            monkeypatch.setenv("DOWNSYNC_DATABASE_PRE_PING", value)
            get_settings.cache_clear()
            get_engine.cache_clear()
            assert get_engine(url).pool._pre_ping is expected
    finally:
        get_settings.cache_clear()
        get_engine.cache_clear()


def test_the_pool_keeps_as_many_connections_as_the_settings_say(monkeypatch: pytest.MonkeyPatch) -> None:
    from downsync.db import get_engine
    from downsync.settings import get_settings

    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"  # never connected: the pool is only built
    try:
        for value, expected in ((None, 20), ("35", 35)):
            if value is None:
                monkeypatch.delenv("DOWNSYNC_DATABASE_POOL_SIZE", raising=False)
            else:
                monkeypatch.setenv("DOWNSYNC_DATABASE_POOL_SIZE", value)
            get_settings.cache_clear()
            get_engine.cache_clear()
            pool = get_engine(url).pool
            assert (pool.size(), pool._max_overflow) == (expected, expected)  # type: ignore[attr-defined]
        monkeypatch.setenv("DOWNSYNC_DATABASE_POOL_SIZE", "0")
        get_settings.cache_clear()
        with pytest.raises(ValueError, match="database_pool_size"):
            get_settings()
    finally:
        get_settings.cache_clear()
        get_engine.cache_clear()

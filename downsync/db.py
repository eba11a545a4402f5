"""Engine, sessions and migrations. Services never commit; the request or task boundary does."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, CursorResult, Engine, Executable, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import Session

from downsync.settings import get_settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


class NotMigratedError(RuntimeError):
    pass


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # WAL lets the API read while a worker writes; the busy timeout queues writers instead of failing them.
    # Transactions are begun by hand (below), so the driver's own implicit BEGIN is switched off.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@functools.cache
def get_engine(url: str | None = None) -> Engine:
    settings = get_settings()
    url = url or settings.database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # Every unit of work takes the write lock up front, so read-then-write (e.g. bumping an event's
        # version) never interleaves with another process's; readers still proceed under WAL.
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_engine(
        url,
        pool_pre_ping=settings.database_pre_ping,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
    )


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A unit of work: committed when the block ends normally, rolled back otherwise."""
    with Session(engine or get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def transaction(engine: Engine | None = None) -> Iterator[Connection]:
    """A unit of work of Core statements only (``run``), without an ORM session around it: committed when the block
    ends normally, rolled back otherwise. A placement's claim, pin and outcome are one each."""
    with (engine or get_engine()).begin() as connection:
        yield connection


def run(session: Session | Connection, statement: Executable, params: Any = None) -> CursorResult[*tuple[Any, ...]]:
    """Execute a Core statement in the session's (or the connection's) transaction, without the ORM's work around it.

    Through ``Session.exec`` an UPDATE is evaluated against every object the session holds and rows go through the
    ORM's result machinery, for sessions that hold no objects (accepting a write took 7.8 ms that way, 4.6 ms this
    way). What the session has pending is flushed first, as ``exec`` would.
    """
    if isinstance(session, Connection):
        return session.execute(statement, params)
    if session.new or session.dirty or session.deleted:
        session.flush()
    return session.connection().execute(statement, params)


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# Alembic (with Mako and Pygments) is imported only to migrate: checking a store needs the newest revision and the
# database's, both read here without it. Importing it cost every API, worker and scheduler process 11 MB of RSS for
# its whole life, for a check made at start and at each readiness probe.


def upgrade(url: str | None = None) -> str:
    from alembic import command

    url = url or get_settings().database_url
    get_engine(url)  # creates the SQLite folder
    command.upgrade(alembic_config(url), "head")
    return head_revision()


@functools.cache
def head_revision() -> str:
    """The newest migration: the one revision no other migration revises, read from the files' ``revision`` and
    ``down_revision`` assignments as Alembic reads them (tests/downsync/test_db.py compares with Alembic's answer)."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        values: dict[str, Any] = {}
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if node.targets[0].id in ("revision", "down_revision"):
                    values[node.targets[0].id] = ast.literal_eval(node.value)
        if "revision" not in values:
            continue
        revisions.add(values["revision"])
        down = values.get("down_revision")
        revised.update([down] if isinstance(down, str) else down or ())
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"the migrations have {len(heads)} heads ({sorted(heads)}), not one")
    return heads.pop()


def current_revision(engine: Engine) -> str | None:
    """The database's migration, as Alembic records it (None before the first)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    return ",".join(sorted(found)) or None


def check_migrated(engine: Engine | None = None) -> None:
    """Refuse to run on a database that is not at the latest migration, saying what to run."""
    engine = engine or get_engine()
    current = current_revision(engine)
    if current != head_revision():
        where = engine.url.render_as_string(hide_password=True)
        raise NotMigratedError(
            f"the database {where} is at migration {current or 'none'}, not {head_revision()}: "
            "run `downsync db upgrade` first"
        )

"""Mailbox addresses resolved to their mailbox's primary address, cached per tenant in the store.

A mailbox may have several addresses; Exchange reads and writes the same calendar whichever names it. The
service compares mailboxes by their primary address, so two addresses of one mailbox are one mailbox. The
directory is asked once per tenant and address and its answer trusted for ``DOWNSYNC_ADDRESS_CACHE_SECONDS``;
an address the directory has no mailbox for (a guest's, a mistyped one) stands for itself, and that answer is
cached as well. Every address here is lower-cased.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from downsync.core.errors import GatewayError, TransientError
from downsync.core.gateway import CalendarGateway
from downsync.db import session_scope
from downsync.models import MailboxAddress, utcnow

log = logging.getLogger(__name__)


def normal(address: str) -> str:
    return address.strip().lower()


def bound(session: Session) -> Engine:
    """The engine a session works on: a resolver asks the store on its own sessions, after the caller's closed."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    return engine


def cached(session: Session, tenant_id: int, addresses: Iterable[str], fresh_since: datetime) -> dict[str, str]:
    """The primary address of each address resolved since ``fresh_since`` (itself when it names no mailbox)."""
    wanted = sorted({normal(a) for a in addresses})
    if not wanted:
        return {}
    rows = session.exec(
        select(MailboxAddress.address, MailboxAddress.primary_address).where(
            MailboxAddress.tenant_id == tenant_id,
            col(MailboxAddress.address).in_(wanted),
            col(MailboxAddress.resolved_at) >= fresh_since,
        )
    ).all()
    return {address: primary or address for address, primary in rows}


def remember(session: Session, tenant_id: int, found: dict[str, str | None], now: datetime) -> None:
    """Record what the directory said of each address (None: no mailbox), replacing older answers."""
    if not found:
        return
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    rows = [{"tenant_id": tenant_id, "address": a, "primary_address": p, "resolved_at": now} for a, p in found.items()]
    statement = insert(MailboxAddress).values(rows)
    session.exec(
        statement.on_conflict_do_update(
            index_elements=["tenant_id", "address"],
            set_={"primary_address": statement.excluded.primary_address, "resolved_at": statement.excluded.resolved_at},
        )
    )


class Resolver:
    """One tenant's addresses resolved through its gateway, with the store as the cache.

    ``strict`` lookups (the worker's) raise the gateway's transient failures, so the work is tried again later;
    lenient ones (the API's, which must answer) take an address the directory did not answer for, in time or at
    all, as itself, and do not cache that.
    """

    def __init__(
        self,
        engine: Engine,
        tenant_id: int,
        gateway: CalendarGateway,
        ttl_seconds: float,
        now: Callable[[], datetime] = utcnow,
        concurrency: int = 8,
    ) -> None:
        self.engine = engine
        self.tenant_id = tenant_id
        self.gateway = gateway
        self.ttl = timedelta(seconds=ttl_seconds)
        self.now = now
        self.concurrency = concurrency

    def cached(self, addresses: Iterable[str]) -> dict[str, str]:
        with session_scope(self.engine) as session:
            return cached(session, self.tenant_id, addresses, self.now() - self.ttl)

    def lookup(self, addresses: Iterable[str], *, strict: bool = True, deadline: float | None = None) -> dict[str, str]:
        """Every address's primary address: from the cache, else the directory (in parallel), then cached."""
        wanted = list(dict.fromkeys(normal(a) for a in addresses))
        try:
            known = self.cached(wanted)
        except SQLAlchemyError:
            if strict:
                raise
            log.warning("the address cache could not be read; asking the directory", exc_info=True)
            known = {}
        missing = [a for a in wanted if a not in known]
        if missing:
            known |= self.resolve(missing, strict=strict, deadline=deadline)
        return known

    def resolve(self, addresses: list[str], *, strict: bool, deadline: float | None = None) -> dict[str, str]:
        """Ask the directory for each address (at most ``concurrency`` at once, until ``deadline`` if given), record
        the answers, and return every address's primary address. An address without an answer stands for itself
        and is not cached; a strict lookup raises the first transient failure instead (the work is tried again).
        A permanent refusal (the directory out of the account's reach) is no answer either, in both modes. Lookups
        still under way at the deadline go on in the background, and cache their answers when they come."""
        answers: dict[str, str | None] = {}
        failures: list[TransientError] = []
        lock = threading.Lock()
        late = threading.Event()

        def ask(address: str) -> None:
            try:
                primary = self.gateway.resolve(address)
            except TransientError as error:
                with lock:
                    failures.append(error)
                return
            except GatewayError as error:
                log.warning("the directory refused to resolve %s: %s", address, error.code)
                return
            answer = normal(primary) if primary else None
            with lock:
                answers[address] = answer
                after = late.is_set()
            if after:
                self._remember({address: answer}, strict=False)

        if len(addresses) == 1 and deadline is None:
            ask(addresses[0])
        else:
            pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(addresses)), thread_name_prefix="resolve")
            try:
                futures = [pool.submit(ask, a) for a in addresses]
                wait(futures, timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
            finally:
                pool.shutdown(wait=False)
        with lock:
            answered = dict(answers)
            first = failures[0] if failures else None
            late.set()
        self._remember(answered, strict)
        if strict and first is not None:
            raise first
        return {a: answered.get(a) or a for a in addresses}

    def _remember(self, answered: dict[str, str | None], strict: bool) -> None:
        try:
            with session_scope(self.engine) as session:
                remember(session, self.tenant_id, answered, self.now())
        except SQLAlchemyError:
            if strict:
                raise
            log.warning("could not cache %d resolved addresses", len(answered), exc_info=True)

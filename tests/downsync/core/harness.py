"""The core on a real store (SQLite) and the in-memory backend, with a clock the test moves by hand.

No broker and no threads: the test decides which placement a "worker" runs next, which calls fail,
which writes are held back to land later, and where a worker dies.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import SQLModel, col, or_, select

from downsync.backends.memory.gateway import MemoryGateway, Organisation
from downsync.core.converge import Converger, Step, TenantContext
from downsync.core.leases import LeaseKeeper
from downsync.db import get_engine, session_scope
from downsync.jobs import Accepted, Listed, accept_write
from downsync.models import Event, JobResult, Placement, Tenant
from downsync.settings import Settings

START = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


class Crash(BaseException):
    """The worker process dies here: nothing after this point runs, nothing is recorded."""


@dataclass
class Clock:
    now: datetime = START
    mono: float = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


SETTINGS = Settings(
    environment="test",
    lease_seconds=10,
    settle_seconds=20,
    retry_base_seconds=1,
    retry_max_seconds=5,
    retry_budget_seconds=10**6,
)


def fresh_engine() -> Engine:
    directory = Path(tempfile.mkdtemp(prefix="downsync-core-"))
    engine = get_engine.__wrapped__(f"sqlite:///{directory / 'store.db'}")  # type: ignore[attr-defined]
    SQLModel.metadata.create_all(engine)
    return engine


@dataclass
class World:
    engine: Engine
    org: Organisation
    clock: Clock
    tenants: dict[int, TenantContext] = field(default_factory=dict)

    @classmethod
    def create(cls, tenant_names: tuple[str, ...] = ("acme",)) -> World:
        world = cls(engine=fresh_engine(), org=Organisation(), clock=Clock())
        with session_scope(world.engine) as session:
            for name in tenant_names:
                tenant = Tenant(name=name, backend="memory", backend_options={"org": "test"}, backend_secrets={})
                session.add(tenant)
                session.flush()
                assert tenant.id is not None
                world.tenants[tenant.id] = TenantContext(name, tenant.tag_id, MemoryGateway(world.org))
        return world

    def converger(self, keeper: LeaseKeeper | None = None) -> Converger:
        return Converger(
            self.engine,
            lambda tenant_id: self.tenants[tenant_id],
            SETTINGS,
            keeper or self.keeper(),
            now=lambda: self.clock.now,
            monotonic=lambda: self.clock.mono,
        )

    def keeper(self) -> LeaseKeeper:
        return LeaseKeeper(
            self.engine,
            SETTINGS.lease_seconds,
            now=lambda: self.clock.now,
            monotonic=lambda: self.clock.mono,
            heartbeat=False,
        )

    def tenant_id(self, name: str) -> int:
        return next(i for i, t in self.tenants.items() if t.name == name)

    def accept(
        self,
        tenant: str,
        kind: str,
        event_id: str,
        desired: dict[str, Any] | None,
        present: list[str],
        listed: list[str],
        operation: str = "update",
    ) -> Accepted:
        with session_scope(self.engine) as session:
            return accept_write(
                session,
                tenant_id=self.tenant_id(tenant),
                kind=kind,
                operation=operation,
                event_id=event_id,
                desired=desired,
                present=present,
                listed=[Listed(e) for e in listed],
                correlation_id="test",
                now=self.clock.now,
            )

    def due(self) -> list[int]:
        with session_scope(self.engine) as session:
            rows = session.exec(
                select(Placement.id).where(
                    col(Placement.due_at).is_not(None),
                    col(Placement.due_at) <= self.clock.now,
                    or_(col(Placement.lease_expires_at).is_(None), col(Placement.lease_expires_at) < self.clock.now),
                )
            ).all()
        return sorted(i for i in rows if i is not None)

    def scheduled(self) -> list[Placement]:
        with session_scope(self.engine) as session:
            return list(session.exec(select(Placement).where(col(Placement.due_at).is_not(None))).all())

    def run(self, placement_id: int) -> Step:
        return self.converger().run(placement_id)

    def settle(self, max_rounds: int = 200) -> None:
        """No more faults: land everything in flight, let time pass, run whatever is due until nothing is."""
        self.org.intercept = None
        self.org.land()
        for _ in range(max_rounds):
            scheduled = self.scheduled()
            if not scheduled:
                return
            due = self.due()
            if not due:
                soonest = min(p.due_at for p in scheduled if p.due_at is not None)
                leased = [p.lease_expires_at for p in scheduled if p.lease_expires_at is not None]
                target = max([soonest, *leased])
                self.clock.now = max(self.clock.now, _aware(target)) + timedelta(seconds=0.1)
                self.clock.mono += 60
                continue
            for placement_id in due:
                self.run(placement_id)
        raise AssertionError(f"still scheduled after {max_rounds} rounds: {self.scheduled()}")

    def results(self) -> list[JobResult]:
        with session_scope(self.engine) as session:
            return list(session.exec(select(JobResult)).all())

    def events(self) -> list[Event]:
        with session_scope(self.engine) as session:
            return list(session.exec(select(Event)).all())


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


Intercept = Callable[[str, str], str | None]

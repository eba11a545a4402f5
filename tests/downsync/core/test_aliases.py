"""Two addresses of one mailbox are one mailbox: placements, meetings and the address cache, on the in-memory
backend and a real store."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from downsync.core.aliases import Resolver
from downsync.core.model import MEETING, POSTBACK, Appointment, Invitee, Meeting
from downsync.db import session_scope
from downsync.models import NO_ERROR, PENDING, MailboxAddress, Placement
from tests.downsync.core.harness import SETTINGS, START, World

BOB, ROBERT = "bob@x.test", "robert@x.test"  # one mailbox, two addresses
ANN = "ann@x.test"


def appointment(n: int = 1) -> dict[str, Any]:
    return Appointment(f"s{n}", "b", None, START, START + timedelta(hours=n)).to_json()


def aliased() -> World:
    world = World.create()
    world.org.aliases[ROBERT] = BOB
    return world


def items(world: World, mailbox: str) -> list[Any]:
    return list(world.org.calendars.get(mailbox, {}).values())


def codes(world: World) -> dict[str, str]:
    return {r.mailbox: r.error_code for r in world.results() if r.version == max(x.version for x in world.results())}


def test_an_alias_and_its_primary_in_one_event_end_as_one_item() -> None:
    world = aliased()
    world.accept("acme", POSTBACK, "e1", appointment(), [ROBERT, BOB], [ROBERT, BOB])
    world.settle()
    assert len(items(world, BOB)) == 1 and world.org.calendars.keys() == {BOB}
    assert codes(world) == {ROBERT: NO_ERROR, BOB: NO_ERROR}  # each address as the caller wrote it
    world.accept("acme", POSTBACK, "e1", appointment(2), [ROBERT, BOB], [ROBERT, BOB])
    world.settle()
    [item] = items(world, BOB)
    assert item.fingerprint == Appointment.from_json(appointment(2)).fingerprint


def test_a_sibling_steps_aside_while_the_other_address_is_being_written() -> None:
    world = aliased()
    world.accept("acme", POSTBACK, "e1", appointment(), [ROBERT, BOB], [ROBERT, BOB])
    first, second = world.due()
    steps: list[Any] = []

    def meanwhile(op: str, _: str) -> str | None:
        if op == "create" and not steps:
            world.org.intercept = None
            steps.append(world.run(second))  # a second worker, while the first one is about to create
        return None

    world.org.intercept = meanwhile
    assert world.run(first).status == "done"
    assert [s.status for s in steps] == ["retry"]  # it stepped aside, and no attempt counted
    with session_scope(world.engine) as session:
        placement = session.get(Placement, second)
        assert placement is not None and placement.attempts == 0 and placement.resolved == BOB
    world.settle()
    assert len(items(world, BOB)) == 1
    assert sum(1 for op, _ in world.org.calls if op == "create") == 1
    assert codes(world) == {ROBERT: NO_ERROR, BOB: NO_ERROR}


def test_removing_one_address_keeps_the_item_the_other_still_needs() -> None:
    world = aliased()
    world.accept("acme", POSTBACK, "e1", appointment(), [ROBERT, BOB, ANN], [ROBERT, BOB, ANN])
    world.settle()
    world.accept("acme", POSTBACK, "e1", appointment(), [ROBERT, ANN], [ROBERT, BOB, ANN])
    world.settle()
    assert len(items(world, BOB)) == 1 and len(items(world, ANN)) == 1
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [ROBERT, BOB, ANN])
    world.settle()
    assert len(items(world, BOB)) == 1 and items(world, ANN) == []
    world.accept("acme", POSTBACK, "e1", None, [], [ROBERT, BOB])
    world.settle()
    assert items(world, BOB) == []


def test_an_attendee_listed_under_two_addresses_is_invited_once() -> None:
    world = aliased()
    people = (Invitee(ROBERT, False), Invitee(ANN, True), Invitee(BOB, True))
    state = Meeting("m", "agenda", "room", START, START + timedelta(hours=1), people)
    world.accept("acme", MEETING, "m1", state.to_json(), ["org@x.test"], ["org@x.test"])
    world.settle()
    requests = sorted(m.to for m in world.org.messages if m.kind == "request")
    assert requests == [ANN, BOB]
    [item] = items(world, "org@x.test")
    assert item.fingerprint == state.fingerprint and item.attendees == {BOB: True, ANN: True}
    # Unchanged, it stays as it is: nothing sent again.
    world.accept("acme", MEETING, "m1", state.to_json(), ["org@x.test"], ["org@x.test"])
    world.settle()
    assert len(world.org.messages) == 2
    # Dropping one of the two addresses changes who is listed, not who is invited: an update, no cancel.
    fewer = Meeting("m", "agenda", "room", START, START + timedelta(hours=1), people[1:])
    world.accept("acme", MEETING, "m1", fewer.to_json(), ["org@x.test"], ["org@x.test"])
    world.settle()
    assert [m.kind for m in world.org.messages if m.to == BOB] == ["request", "update"]


def test_an_address_that_names_no_mailbox_fails_as_before() -> None:
    world = aliased()
    world.org.missing.add("nobody@x.test")
    world.accept("acme", POSTBACK, "e1", appointment(), ["nobody@x.test"], ["nobody@x.test"])
    world.settle()
    assert codes(world) == {"nobody@x.test": "ErrorMailRecipientNotFound"}


def test_the_directory_down_delays_the_work_and_writes_nothing() -> None:
    world = aliased()
    world.accept("acme", POSTBACK, "e1", appointment(), [ROBERT], [ROBERT])
    [placement] = world.due()
    world.org.directory_down = True
    assert world.run(placement).status == "retry"
    assert world.org.calls == [] and codes(world) == {ROBERT: PENDING}
    world.org.directory_down = False
    world.settle()
    assert len(items(world, BOB)) == 1 and codes(world) == {ROBERT: NO_ERROR}


def test_a_resolved_address_is_reused_within_the_ttl_and_asked_again_after() -> None:
    world = aliased()
    tenant_id = world.tenant_id("acme")
    gateway = world.tenants[tenant_id].gateway
    resolver = Resolver(world.engine, tenant_id, gateway, 60, now=lambda: world.clock.now)
    assert resolver.lookup([ROBERT, "Bob@X.test"]) == {ROBERT: BOB, BOB: BOB}
    assert sorted(world.org.lookups) == [BOB, ROBERT]
    world.clock.advance(59)
    assert resolver.lookup([ROBERT]) == {ROBERT: BOB}
    assert len(world.org.lookups) == 2  # from the cache
    world.org.aliases[ROBERT] = ANN  # the alias moved to another mailbox
    world.clock.advance(2)
    assert resolver.lookup([ROBERT]) == {ROBERT: ANN}
    assert world.org.lookups[2:] == [ROBERT]
    with session_scope(world.engine) as session:
        [row] = session.exec(select(MailboxAddress).where(MailboxAddress.address == ROBERT)).all()
        assert row.primary_address == ANN


def test_an_unanswered_lenient_lookup_stands_for_itself_and_is_not_cached() -> None:
    world = aliased()
    tenant_id = world.tenant_id("acme")
    resolver = Resolver(world.engine, tenant_id, world.tenants[tenant_id].gateway, 60, now=lambda: world.clock.now)
    world.org.directory_down = True
    assert resolver.lookup([ROBERT], strict=False) == {ROBERT: ROBERT}
    world.org.directory_down = False
    assert resolver.lookup([ROBERT], strict=False) == {ROBERT: BOB}
    assert len(world.org.lookups) == 2


def test_a_placement_resolves_once_then_only_the_store_is_read() -> None:
    world = aliased()
    world.accept("acme", POSTBACK, "e1", appointment(), [ROBERT], [ROBERT])
    world.settle()
    world.accept("acme", POSTBACK, "e1", appointment(2), [ROBERT], [ROBERT])
    world.clock.advance(SETTINGS.lease_seconds)
    world.settle()
    assert world.org.lookups == [ROBERT]


def test_a_lookup_too_slow_for_the_deadline_stands_for_itself_and_is_cached_when_it_answers() -> None:
    world = aliased()
    tenant_id = world.tenant_id("acme")
    inner = world.tenants[tenant_id].gateway

    class Slow:
        def resolve(self, address: str) -> str | None:
            if address == ROBERT:
                time.sleep(0.5)
            return inner.resolve(address)

    resolver = Resolver(world.engine, tenant_id, Slow(), 60, now=lambda: world.clock.now)  # type: ignore[arg-type]
    assert resolver.lookup([ROBERT, ANN], strict=False, deadline=time.monotonic() + 0.2) == {ROBERT: ROBERT, ANN: ANN}
    assert resolver.cached([ROBERT, ANN]) == {ANN: ANN}
    for _ in range(100):  # the late answer is cached when it comes
        if resolver.cached([ROBERT]):
            break
        time.sleep(0.05)
    assert resolver.cached([ROBERT]) == {ROBERT: BOB}


def test_a_first_claim_takes_a_fresh_cached_answer_from_the_claim_itself_and_asks_again_when_stale(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = aliased()
    store_reads: list[list[str]] = []
    read_cache = Resolver.cached
    monkeypatch.setattr(Resolver, "cached", lambda self, a: store_reads.append(list(a)) or read_cache(self, a))
    tenant_id = world.tenant_id("acme")
    resolver = Resolver(world.engine, tenant_id, world.tenants[tenant_id].gateway, SETTINGS.address_cache_seconds)
    resolver.now = lambda: world.clock.now
    assert resolver.lookup([ROBERT]) == {ROBERT: BOB}
    world.accept("acme", POSTBACK, "e1", appointment(), [ROBERT], [ROBERT])
    world.settle()
    assert world.org.lookups == [ROBERT] and world.org.calendars.keys() == {BOB}  # the cache's answer, not asked
    assert store_reads == [[ROBERT]]  # only the lookup above: the claim brought the answer along
    world.org.aliases[ROBERT] = ANN
    world.clock.advance(SETTINGS.address_cache_seconds + 1)
    world.accept("acme", POSTBACK, "e2", appointment(), [ROBERT], [ROBERT])
    world.settle()
    assert world.org.lookups == [ROBERT, ROBERT] and world.org.calendars.keys() == {BOB, ANN}


def test_only_a_placement_that_found_a_sibling_pinned_before_it_looks_at_its_siblings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from downsync.core import converge

    looked: list[str] = []
    look = converge.siblings
    monkeypatch.setattr(converge, "siblings", lambda session, c, m: looked.append(c.mailbox) or look(session, c, m))
    world = aliased()
    world.accept("acme", POSTBACK, "e1", appointment(), [ANN], [ANN])
    world.settle()
    assert looked == []  # nobody else converges ann's mailbox for this event: no round trip for it
    world.accept("acme", POSTBACK, "e2", appointment(), [BOB, ROBERT], [BOB, ROBERT])
    world.settle()
    # The second of the two to pin bob's mailbox looks (and then steps aside or follows); one item either way.
    assert looked and len(items(world, BOB)) == 1


def test_a_first_claim_pins_a_mailbox_the_cache_knows_in_its_own_transaction(monkeypatch: pytest.MonkeyPatch) -> None:
    from downsync.core import converge

    pins: list[str] = []
    pin = converge.pin_address
    monkeypatch.setattr(converge, "pin_address", lambda session, c, p: pins.append(c.mailbox) or pin(session, c, p))
    world = aliased()
    world.accept("acme", POSTBACK, "e1", appointment(), [ROBERT, BOB], [ROBERT, BOB])
    world.settle()
    assert sorted(pins) == [BOB, ROBERT]  # unknown: asked of the directory, then pinned in a transaction of its own
    world.accept("acme", POSTBACK, "e2", appointment(), [ROBERT, BOB], [ROBERT, BOB])
    world.settle()
    assert sorted(pins) == [BOB, ROBERT]  # both known now: each pinned by its claim
    with session_scope(world.engine) as session:
        pinned = session.exec(select(Placement.mailbox, Placement.resolved)).all()
    assert sorted(pinned) == [(BOB, BOB), (BOB, BOB), (ROBERT, BOB), (ROBERT, BOB)]
    assert len(items(world, BOB)) == 2  # e1 and e2, once each

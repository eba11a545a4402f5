"""Converging one placement through its hardest cases, step by step, on a real store and the in-memory backend."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from downsync.backends.memory.gateway import APPLIED_UNCLEAR, FAIL, LATE, THROTTLE, Item
from downsync.core import converge as converge_module
from downsync.core.model import MEETING, POSTBACK, Appointment, Invitee, Meeting
from downsync.models import PENDING
from tests.downsync.core.harness import SETTINGS, START, Crash, World

BOB = "bob@x.test"


def appointment(n: int = 1) -> dict[str, Any]:
    return Appointment(f"s{n}", "b", None, START, START + timedelta(hours=1)).to_json()


def tagged(world: World, mailbox: str, tenant: str = "acme") -> list[Item]:
    tag = next(t.tag_id for t in world.tenants.values() if t.name == tenant)
    return [i for i in world.org.calendars.get(mailbox, {}).values() if i.tenant == tag]


def only(world: World) -> int:
    [placement_id] = world.due()
    return placement_id


def codes(world: World) -> list[str]:
    return [r.error_code for r in world.results()]


def creates(world: World) -> int:
    return sum(1 for op, _ in world.org.calls if op == "create")


def test_a_create_without_an_answer_is_not_repeated_before_it_can_no_longer_land() -> None:
    world = World.create()
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    placement = only(world)
    world.org.intercept = lambda op, _: LATE if op == "create" else None
    assert world.run(placement).status == "retry"
    world.org.intercept = None
    world.clock.advance(2)
    step = world.run(placement)  # nothing there yet, and the first create may still land: wait
    assert step.status == "retry" and codes(world) == [PENDING] and creates(world) == 1
    assert "may still reach Exchange" in world.results()[0].message
    world.org.land()
    world.clock.advance(SETTINGS.settle_seconds)
    assert world.run(placement).status == "done"
    assert codes(world) == ["NoError"] and creates(world) == 1 and len(tagged(world, BOB)) == 1


def test_a_late_copy_after_the_settle_time_is_removed_by_the_check() -> None:
    world = World.create()
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    placement = only(world)
    world.org.intercept = lambda op, _: LATE if op == "create" and creates(world) == 1 else None
    world.run(placement)
    world.clock.advance(SETTINGS.settle_seconds + 1)
    assert world.run(placement).status == "done" and creates(world) == 2  # the first is presumed lost
    world.org.land()  # ... but it lands after all
    assert len(tagged(world, BOB)) == 2
    world.settle()
    assert len(tagged(world, BOB)) == 1


def test_a_worker_that_died_mid_create_blocks_creates_until_its_lease_and_the_settle_time_are_over() -> None:
    world = World.create()
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    placement = only(world)

    def die(op: str, _: str) -> str | None:
        if op == "create":
            world.org.in_flight.append(lambda: None)  # its request was on the wire; it never lands
            raise Crash(op)
        return None

    world.org.intercept = die
    with pytest.raises(Crash):
        world.run(placement)
    world.org.intercept = None
    assert world.due() == []  # the lease holds the work until it expires
    world.clock.advance(SETTINGS.lease_seconds + 0.5)
    assert world.run(placement).status == "retry" and creates(world) == 1  # waits instead of creating
    world.clock.advance(SETTINGS.settle_seconds)
    assert world.run(placement).status == "done" and len(tagged(world, BOB)) == 1


def test_a_write_that_happened_without_an_answer_is_found_not_repeated() -> None:
    world = World.create()
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    placement = only(world)
    world.org.intercept = lambda op, _: APPLIED_UNCLEAR if op == "create" else None
    world.run(placement)
    world.org.intercept = None
    world.clock.advance(1)
    assert world.run(placement).status == "done" and creates(world) == 1
    # One more look once nothing can land any more, then the placement rests.
    assert world.scheduled() and world.due() == []
    world.settle()
    assert world.scheduled() == [] and len(tagged(world, BOB)) == 1


def test_a_stalled_worker_writes_nothing_after_its_lease_ran_out() -> None:
    world = World.create()
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    placement = only(world)
    stalled = world.converger(world.keeper())
    other = world.converger(world.keeper())

    def stall(op: str, _: str) -> str | None:
        if op == "find" and not world.org.messages and creates(world) == 0 and len(world.org.calls) == 1:
            world.clock.advance(SETTINGS.lease_seconds + 1)  # SIGSTOP long enough for the lease to expire
            world.org.intercept = None
            assert other.run(placement).status == "retry"  # the next worker waits for what may be in flight
            world.clock.advance(SETTINGS.settle_seconds)
            assert other.run(placement).status == "done"
        return None

    world.org.intercept = stall
    assert stalled.run(placement).status == "lost"
    assert creates(world) == 1 and len(tagged(world, BOB)) == 1 and codes(world) == ["NoError"]


def test_throttling_is_never_final_and_other_transient_failures_are_after_the_budget() -> None:
    world = World.create()
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    placement = only(world)
    world.org.intercept = lambda op, _: THROTTLE
    for _ in range(5):
        world.clock.advance(SETTINGS.retry_budget_seconds)
        world.clock.advance(10)
        assert world.run(placement).status == "retry"
    assert codes(world) == [PENDING] and "busy" in world.results()[0].message
    world.org.intercept = lambda op, _: FAIL
    world.clock.advance(10)
    assert world.run(placement).code == "ErrorInternalServerTransientError"


def test_retries_wait_at_least_the_servers_back_off() -> None:
    world = World.create()
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    placement = only(world)
    world.org.intercept = lambda op, _: THROTTLE
    world.run(placement)
    [scheduled] = world.scheduled()
    assert scheduled.due_at >= world.clock.now + timedelta(seconds=0.5)  # the memory server asks for 0.5 s


def test_a_bug_is_final_at_once_and_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    world = World.create()
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    placement = only(world)

    def bug(op: str, _: str) -> str | None:
        raise KeyError("a bug")

    world.org.intercept = bug
    with caplog.at_level(logging.ERROR):
        step = world.run(placement)
    assert step.code == "ErrorInternalServerError" and world.scheduled() == []
    assert "KeyError" in world.results()[0].message
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_a_store_blip_when_recording_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World.create()
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    placement = only(world)
    real = converge_module.release
    failures = iter([True, True])

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if next(failures, False):
            raise OperationalError("UPDATE", {}, Exception("server closed the connection"))
        return real(*args, **kwargs)

    monkeypatch.setattr(converge_module, "release", flaky)
    monkeypatch.setattr(converge_module.time, "sleep", lambda _: None)
    assert world.run(placement).status == "done" and codes(world) == ["NoError"]


def test_tenants_sharing_an_organisation_and_an_event_id_never_touch_each_others_items() -> None:
    world = World.create(("acme", "beta"))
    world.accept("acme", POSTBACK, "same-id", appointment(1), [BOB], [BOB])
    world.accept("beta", POSTBACK, "same-id", appointment(2), [BOB], [BOB])
    world.settle()
    assert len(tagged(world, BOB, "acme")) == 1 and len(tagged(world, BOB, "beta")) == 1
    world.accept("beta", POSTBACK, "same-id", None, [], [BOB])
    world.settle()
    assert tagged(world, BOB, "beta") == [] and tagged(world, BOB, "acme")[0].subject == "s1"


def legacy_item(world: World, item_id: str) -> Item:
    item = Item(item_id, 1, None, POSTBACK, "e1", "old", "old", "", None, START, START + timedelta(hours=1))
    world.org.calendar(BOB)[item_id] = item
    return item


def test_an_item_tagged_before_tenants_is_adopted_by_the_only_tenant_with_that_event() -> None:
    world = World.create(("acme", "beta"))
    legacy_item(world, "old-1")
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    world.settle()
    [item] = world.org.calendars[BOB].values()
    assert item.id == "old-1" and item.tenant == world.tenants[world.tenant_id("acme")].tag_id


def test_an_item_tagged_before_tenants_is_left_alone_when_two_tenants_have_the_event() -> None:
    world = World.create(("acme", "beta"))
    legacy_item(world, "old-1")
    world.accept("beta", POSTBACK, "e1", appointment(2), [BOB], [BOB])
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    world.settle()
    assert world.org.calendars[BOB]["old-1"].tenant is None and len(world.org.calendars[BOB]) == 3


def test_a_meeting_invites_from_one_item_and_reordering_attendees_sends_nothing() -> None:
    world = World.create()
    people = (Invitee("ann@x.test", True), Invitee("cat@x.test", False))
    first = Meeting("m", "b", "r", START, START + timedelta(hours=1), people).to_json()
    world.accept("acme", MEETING, "m1", first, [BOB], [BOB])
    world.settle()
    assert [(m.kind, m.to) for m in world.org.messages] == [("request", "ann@x.test"), ("request", "cat@x.test")]
    reordered = Meeting("m", "b", "r", START, START + timedelta(hours=1), people[::-1]).to_json()
    world.accept("acme", MEETING, "m1", reordered, [BOB], [BOB])
    world.settle()
    assert len(world.org.messages) == 2 and codes(world) == ["NoError", "NoError"]

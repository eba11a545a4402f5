"""Accepted writes and the broker: placements whose message never left are sent at the dispatcher's next tick."""

from __future__ import annotations

from datetime import timedelta

from downsync.core.dispatch import take_due
from downsync.core.model import POSTBACK, Appointment
from downsync.db import session_scope
from downsync.jobs import mark_unsent
from tests.downsync.core.harness import START, World

BOB = "bob@x.test"


def test_placements_the_broker_did_not_take_are_dispatched_at_once_not_after_the_redelivery_time() -> None:
    world = World.create()
    state = Appointment("s", "b", None, START, START + timedelta(hours=1)).to_json()
    accepted = world.accept("acme", POSTBACK, "e1", state, [BOB], [BOB])
    soon = world.clock.now + timedelta(seconds=1)
    with session_scope(world.engine) as session:
        # Accepted and handed to the broker: a dispatcher leaves it alone for the redelivery time (30 s).
        assert take_due(session, soon, redeliver_seconds=30, limit=10) == []
    with session_scope(world.engine) as session:
        mark_unsent(session, accepted.placement_ids)  # the broker was down: the message never left
    with session_scope(world.engine) as session:
        assert take_due(session, soon, redeliver_seconds=30, limit=10) == accepted.placement_ids

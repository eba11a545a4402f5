"""A server's back-off holds for the mailbox, whichever placement asks next."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from downsync.backends.memory.gateway import THROTTLE
from downsync.core.errors import TransientError
from downsync.core.model import POSTBACK, Appointment
from downsync.core.throttle import FULL, AccountLimit, Deferred, GatedGateway, MailboxGate
from downsync.models import NO_ERROR
from tests.downsync.core.harness import START, World

BOB = "bob@x.test"


def appointment(n: int) -> dict[str, Any]:
    return Appointment(f"s{n}", "b", None, START, START + timedelta(hours=1)).to_json()


def test_a_mailbox_the_server_throttled_is_not_called_for_another_event_before_the_back_off() -> None:
    world = World.create()
    world.accept("acme", POSTBACK, "e1", appointment(1), [BOB], [BOB])
    world.accept("acme", POSTBACK, "e2", appointment(2), [BOB], [BOB])
    first, second = world.due()
    converger = world.converger()  # one per worker process, as in production
    answers = iter([THROTTLE])
    world.org.intercept = lambda op, mailbox: next(answers, None)
    assert converger.run(first).status == "retry"
    assert world.org.calls == [("find", BOB)]
    # Another event, the same mailbox, at once: nothing is sent, and it is due when the back-off is over.
    assert converger.run(second).status == "retry"
    assert world.org.calls == [("find", BOB)]
    due = {p.id: p.due_at for p in world.scheduled()}
    assert due[second] >= world.clock.now + timedelta(seconds=0.5)  # the memory server asks for 0.5 s
    assert due[second] < world.clock.now + timedelta(seconds=1)  # no exponential back-off: nothing was asked
    world.clock.advance(0.8)
    assert converger.run(second).status == "done"
    world.clock.advance(5)
    assert converger.run(first).status == "done"
    assert {r.error_code for r in world.results()} == {NO_ERROR}


def test_calls_to_one_mailbox_go_one_at_a_time_and_see_the_answer_before_them() -> None:
    clock = [100.0]
    gate = MailboxGate(wait_seconds=5, monotonic=lambda: clock[0])
    entered, leave = threading.Event(), threading.Event()
    calls: list[str] = []

    def throttled() -> None:
        calls.append("first")
        entered.set()
        leave.wait(5)
        raise TransientError("ErrorServerBusy", "busy", back_off=2.0, throttled=True)

    outcome: list[BaseException] = []

    def first() -> None:
        try:
            gate.call("bob", throttled)
        except TransientError as error:
            outcome.append(error)

    thread = threading.Thread(target=first)
    thread.start()
    entered.wait(5)
    assert gate.call("alice", lambda: "other mailboxes are not held up") == "other mailboxes are not held up"
    second: list[BaseException] = []

    def wait_for_turn() -> None:
        try:
            gate.call("bob", calls.clear)
        except Deferred as error:
            second.append(error)

    waiting = threading.Thread(target=wait_for_turn)
    waiting.start()
    leave.set()  # the first call comes back busy while the second one waits for its turn
    thread.join(5)
    waiting.join(5)
    assert calls == ["first"]  # the second call was never made
    # The server's back-off and the margin by which Exchange's clock of it may run behind ours.
    assert isinstance(second[0], Deferred) and second[0].back_off == pytest.approx(2.0 + gate.margin_seconds)
    clock[0] += 2.01 + gate.margin_seconds
    assert gate.call("bob", lambda: "called") == "called"


def test_a_call_that_cannot_get_its_turn_is_deferred_not_made() -> None:
    gate = MailboxGate(wait_seconds=0.05)
    entered, leave = threading.Event(), threading.Event()

    def slow() -> None:
        entered.set()
        leave.wait(5)

    thread = threading.Thread(target=gate.call, args=("bob", slow))
    thread.start()
    entered.wait(5)
    with pytest.raises(Deferred) as deferred:
        gate.call("bob", lambda: pytest.fail("called while another call to the mailbox was under way"))
    assert deferred.value.throttled and deferred.value.back_off == 1.0
    leave.set()
    thread.join(5)


class Board:
    """What worker processes share, as ``downsync.backoff.RedisBackOffBoard`` keeps it."""

    def __init__(self) -> None:
        self.held: dict[str, float] = {}
        self.turns: dict[str, str] = {}
        self.slots: dict[str, set[str]] = {}

    def enter(
        self, key: str, token: str, now: float, hold_seconds: float, account: AccountLimit | None = None
    ) -> float | None:
        if self.held.get(key, 0.0) > now:
            return self.held[key] - now
        taken = self.slots.setdefault(account.key, set()) if account is not None else None
        if account is not None and taken is not None and len(taken) >= account.limit:
            return FULL
        if key in self.turns:
            return 0.0
        self.turns[key] = token
        if taken is not None:
            taken.add(token)
        return None

    def leave(self, key: str, token: str, account: AccountLimit | None = None) -> None:
        if self.turns.get(key) == token:
            del self.turns[key]
        if account is not None:
            self.slots.get(account.key, set()).discard(token)

    def hold(self, key: str, until: float) -> None:
        self.held[key] = max(self.held.get(key, 0.0), until)


def test_a_back_off_told_to_one_worker_process_holds_in_the_others() -> None:
    wall = [1000.0]
    board = Board()
    told = MailboxGate(board=board, wall=lambda: wall[0])
    other = MailboxGate(board=board, wall=lambda: wall[0])  # another process: its own locks and memory

    def busy() -> None:
        raise TransientError("ErrorServerBusy", "busy", back_off=3.0, throttled=True)

    with pytest.raises(TransientError):
        told.call("bob", busy)
    assert board.turns == {}  # the turn is given back whatever the call ended with
    with pytest.raises(Deferred) as deferred:
        other.call("bob", lambda: pytest.fail("called during another process's back-off"))
    assert deferred.value.back_off == pytest.approx(3.0 + told.margin_seconds)
    assert other.call("alice", lambda: "another mailbox") == "another mailbox"
    wall[0] += 3.01 + told.margin_seconds
    assert other.call("bob", lambda: "called") == "called"


def test_a_call_waits_while_another_process_calls_the_mailbox_and_is_deferred_if_that_lasts() -> None:
    board = Board()
    board.turns["bob"] = "another process"
    gate = MailboxGate(wait_seconds=0.2, board=board, poll_seconds=0.01)
    with pytest.raises(Deferred) as deferred:
        gate.call("bob", lambda: pytest.fail("called while another process's call was under way"))
    assert deferred.value.back_off == 1.0
    threading.Timer(0.05, board.leave, args=("bob", "another process")).start()
    assert gate.call("bob", lambda: "after the other call") == "after the other call"


def test_a_turn_held_across_calls_is_taken_once_and_keeps_other_processes_out_between_them() -> None:
    board = Board()
    entered: list[str] = []
    enter = board.enter
    board.enter = lambda key, token, now, hold, account=None: entered.append(token) or enter(key, token, now, hold)  # type: ignore[method-assign]
    gate = MailboxGate(board=board)
    other = MailboxGate(board=board, wait_seconds=0.05, poll_seconds=0.01)  # another process
    with gate.turn("bob"):
        assert gate.call("bob", lambda: "look") == "look"
        with pytest.raises(Deferred):  # between the look and the write, the mailbox is still this turn's
            other.call("bob", lambda: pytest.fail("called during another process's turn"))
        assert gate.call("bob", lambda: "write") == "write"
    # This turn entered once for its two calls; the other process only tried (polling) while it was held.
    assert entered.count(entered[0]) == 1 and len(set(entered)) == 2
    assert board.turns == {}
    assert other.call("bob", lambda: "after the turn") == "after the turn"


def test_a_back_off_told_within_a_turn_stops_its_later_calls() -> None:
    gate = MailboxGate()

    def busy() -> None:
        raise TransientError("ErrorServerBusy", "busy", back_off=3.0, throttled=True)

    with gate.turn("bob"):
        with pytest.raises(TransientError):
            gate.call("bob", busy)
        with pytest.raises(Deferred):
            gate.call("bob", lambda: pytest.fail("called during the back-off it was just told"))


def test_a_directory_lookup_of_a_mailbox_is_gated_as_a_call_to_it() -> None:
    # On Graph, resolving an address reads the mailbox's calendar: Exchange throttles it as a call to the mailbox,
    # and its back-off holds for the placement's own calls (and the other way round).
    class Directory:
        backend = "graph"

        def __init__(self) -> None:
            self.calls: list[tuple[str, str]] = []

        def resolve(self, address: str) -> str | None:
            self.calls.append(("resolve", address))
            raise TransientError("TooManyRequests", "429", back_off=1.0, throttled=True)

        def find(self, mailbox: str, tag: Any) -> list[Any]:
            self.calls.append(("find", mailbox))
            return []

    directory = Directory()
    gated = GatedGateway(directory, MailboxGate())  # type: ignore[arg-type]
    with pytest.raises(TransientError) as told:
        gated.resolve("Bob@X.test")
    assert not isinstance(told.value, Deferred)  # the server answered this one
    with pytest.raises(Deferred):
        gated.find(BOB, None)  # type: ignore[arg-type]
    with pytest.raises(Deferred):
        gated.resolve(BOB)
    assert directory.calls == [("resolve", "Bob@X.test")]


def test_calls_of_every_process_stay_within_the_accounts_limit() -> None:
    board = Board()
    account = AccountLimit("ews:svc", 2)
    gates = [MailboxGate(wait_seconds=0.3, board=board, poll_seconds=0.01) for _ in range(2)]  # two processes
    inside = threading.Barrier(3)
    release = threading.Event()

    def hold(gate: MailboxGate, mailbox: str) -> None:
        with gate.turn(mailbox, account):
            inside.wait(5)
            release.wait(5)

    holders = [threading.Thread(target=hold, args=(gates[n], f"m{n}")) for n in range(2)]
    for thread in holders:
        thread.start()
    inside.wait(5)
    # Two requests of the account under way, to other mailboxes: a third waits, then is not made.
    with pytest.raises(Deferred) as deferred:
        gates[0].call("m3", lambda: pytest.fail("called beyond the account's limit"), account)
    assert "2 requests at once" in str(deferred.value) and deferred.value.back_off == 1.0
    # Another account, or none, is not held up.
    assert gates[1].call("m3", lambda: "other", AccountLimit("ews:other", 2)) == "other"
    assert gates[1].call("m4", lambda: "unlimited") == "unlimited"
    # A slot given back lets the waiting call through.
    threading.Timer(0.05, release.set).start()
    assert gates[0].call("m3", lambda: "called", account) == "called"
    for thread in holders:
        thread.join(5)
    assert board.slots["ews:svc"] == set()


def test_a_gated_gateway_takes_its_accounts_slot_for_the_turn() -> None:
    class Limited:
        backend = "ews"
        account = AccountLimit("ews:svc", 1)

        def find(self, mailbox: str, tag: object) -> list[object]:
            assert board.slots["ews:svc"], "the call was made without a slot"
            return []

    board = Board()
    gated = GatedGateway(Limited(), MailboxGate(board=board))  # type: ignore[arg-type]
    with gated.turn("Bob@x"):
        assert len(board.slots["ews:svc"]) == 1
        assert gated.find("bob@x", None) == []  # type: ignore[arg-type]  # within the turn: no second slot
    assert board.slots["ews:svc"] == set() and FULL < 0

"""What the scenarios send and how they judge it.

A *chain* is one event's writes (create, updates, maybe a delete), sent one after another as Salesforce
sends them; chains run side by side. Every write is recorded in a ``Ledger`` with its answer, so the judge
knows the last accepted state of each event: the last write answered 2xx (a write answered 503 is sent again,
as Salesforce would, up to a few times).

The judge looks at what the simulator holds, never at what the service says it did:

- postbacks: every mailbox of the last accepted state holds exactly one tagged item equal to it (subject, body,
  location, times); every other mailbox the event ever touched holds none. ``lost`` = a mailbox that should hold
  the item holds none, ``duplicated`` = more than one, ``wrong`` = one but not equal (an older state), ``stray`` =
  one that should hold none;
- meetings: the organizer holds exactly one sent meeting equal to the last accepted state (attendees as a set),
  every in-organisation attendee exactly one live copy of it; per attendee and event, ``/_sim/messages`` never
  shows a second ``request`` without a ``cancel`` between, no message goes to someone the event never listed, and
  the last message each one got agrees with the final state (no stray cancellation);
- the store only for what the caller was told: a write answered 503 must not be stored, a write answered 2xx
  must be, and no result may be final with an error code for a mailbox that is fine (``wrongly final``).
"""

from __future__ import annotations

import itertools
import queue
import random
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from benchmarks.faults.stack import DOMAIN, TAG_SET, Harness, log

POSTBACK, MEETING = "postback", "meeting"
CREATE, UPDATE, DELETE = "create", "update", "delete"
PATHS = {POSTBACK: "/api/salesforce/scheduler/postback", MEETING: "/api/salesforce/scheduler/meeting"}
METHODS = {
    (POSTBACK, CREATE): "POST",
    (POSTBACK, UPDATE): "PUT",
    (POSTBACK, DELETE): "DELETE",
    (MEETING, CREATE): "POST",
    (MEETING, UPDATE): "PATCH",
    (MEETING, DELETE): "DELETE",
}


def mailbox(n: int) -> str:
    return f"u{n:03d}@{DOMAIN}"


def stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class State:
    """An event as the caller writes it."""

    organizer: str
    subject: str
    body: str
    location: str
    start: str
    end: str
    attendees: tuple[tuple[str, bool], ...] = ()

    def mailboxes(self) -> list[str]:
        """A postback's mailboxes: the organizer and every attendee, each once, as the store compares them."""
        return list(dict.fromkeys(e.lower() for e in [self.organizer, *(a for a, _ in self.attendees)]))

    def invitees(self) -> set[tuple[str, bool]]:
        """A meeting's attendees as the organizer's item lists them: each once, never the organizer."""
        seen: dict[str, bool] = {}
        for email, required in self.attendees:
            if email.lower() != self.organizer.lower():
                seen.setdefault(email.lower(), required)
        return set(seen.items())

    def people(self) -> list[dict[str, Any]]:
        return [{"email": e, "isRequired": "true" if r else "false"} for e, r in self.attendees]

    def fields(self) -> dict[str, Any]:
        return {
            "organizerEmail": self.organizer,
            "subject": self.subject,
            "body": self.body,
            "location": self.location,
            "startTime": self.start,
            "endTime": self.end,
            "attendees": self.people(),
        }


def random_state(rng: random.Random, pool: Sequence[str], organizer: str | None = None, size: int = 3) -> State:
    start = datetime(2031, 3, 3, 8, 0, tzinfo=UTC) + timedelta(minutes=15 * rng.randrange(0, 2000))
    organizer = organizer or rng.choice(pool)
    others = [m for m in pool if m != organizer]
    attendees = tuple((m, rng.random() < 0.7) for m in rng.sample(others, size))
    return State(
        organizer=organizer,
        subject=f"subject {rng.randrange(10**6)}",
        body=f"body {uuid.uuid4().hex}",
        location=f"room {rng.randrange(100)}",
        start=stamp(start),
        end=stamp(start + timedelta(minutes=30 * rng.randrange(1, 5))),
        attendees=attendees,
    )


def changed(rng: random.Random, state: State, pool: Sequence[str], move_people: bool = True) -> State:
    """The next version of an event: new subject and times, and sometimes other attendees."""
    start = datetime.fromisoformat(state.start.replace("Z", "+00:00")) + timedelta(hours=rng.randrange(1, 48))
    attendees = state.attendees
    if move_people and rng.random() < 0.5:
        others = [m for m in pool if m != state.organizer]
        attendees = tuple((m, rng.random() < 0.7) for m in rng.sample(others, len(state.attendees)))
    return State(
        organizer=state.organizer,
        subject=f"subject {rng.randrange(10**6)}",
        body=f"body {uuid.uuid4().hex}",
        location=f"room {rng.randrange(100)}",
        start=stamp(start),
        end=stamp(start + timedelta(minutes=30 * rng.randrange(1, 5))),
        attendees=attendees,
    )


@dataclass(frozen=True)
class Step:
    op: str
    state: State | None  # None for a delete: the state deleted is the previous one


@dataclass
class Chain:
    tenant: str
    kind: str
    event_id: str
    steps: list[Step]


def postback_chains(
    rng: random.Random,
    tenant: str,
    count: int,
    pool: Sequence[str],
    writes: int,
    delete_share: float = 0.0,
    size: int = 3,
) -> list[Chain]:
    """``count`` events of ``writes`` postbacks each (``size`` attendees besides the organizer): a create, updates,
    and for ``delete_share`` of them a delete as the last write."""
    chains = []
    for _ in range(count):
        state = random_state(rng, pool, size=size)
        steps = [Step(CREATE, state)]
        deleting = rng.random() < delete_share and writes > 1
        for _ in range(writes - 1 - deleting):
            state = changed(rng, state, pool)
            steps.append(Step(UPDATE, state))
        if deleting:
            steps.append(Step(DELETE, None))
        chains.append(Chain(tenant, POSTBACK, f"evt-{uuid.uuid4().hex[:16]}", steps))
    return chains


def meeting_chains(
    rng: random.Random,
    tenant: str,
    count: int,
    pool: Sequence[str],
    writes: int = 1,
    delete_share: float = 0.0,
    external: str | None = None,
    event_ids: Sequence[str] | None = None,
) -> list[Chain]:
    """``count`` meetings: a create, ``writes - 1`` PATCHes (new times, sometimes other attendees), and for
    ``delete_share`` of them a cancellation; ``external`` is invited to every one."""
    chains = []
    for n in range(count):
        state = random_state(rng, pool)
        if external:
            state = State(**{**state.__dict__, "attendees": (*state.attendees, (external, False))})
        steps = [Step(CREATE, state)]
        deleting = rng.random() < delete_share and writes > 1
        for _ in range(writes - 1 - deleting):
            state = changed(rng, state, pool)
            if external and external not in {a for a, _ in state.attendees}:
                state = State(**{**state.__dict__, "attendees": (*state.attendees, (external, False))})
            steps.append(Step(UPDATE, state))
        if deleting:
            steps.append(Step(DELETE, None))
        event_id = event_ids[n] if event_ids else f"mtg-{uuid.uuid4().hex[:16]}"
        chains.append(Chain(tenant, MEETING, event_id, steps))
    return chains


# --- sending ---------------------------------------------------------------------------------------------------


@dataclass
class Write:
    seq: int
    tenant: str
    kind: str
    op: str
    event_id: str
    state: State | None  # for a delete: the state that was deleted
    correlation: str
    sent_at: float = 0.0
    seconds: float = 0.0
    status: int | None = None  # None: no answer (connection error, client timeout)
    job_id: str | None = None
    answer: Any = None
    error: str | None = None
    # Sent but not answered (the connection broke, the client gave up), and found in the store afterwards.
    stored_unanswered: bool = False

    @property
    def accepted(self) -> bool:
        return self.status in (200, 202) or self.stored_unanswered


@dataclass
class Ledger:
    writes: list[Write] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _seq: itertools.count = field(default_factory=itertools.count)

    def new(self, **kwargs: Any) -> Write:
        with self.lock:
            write = Write(seq=next(self._seq), **kwargs)
            self.writes.append(write)
            return write

    def chains(self) -> dict[tuple[str, str, str], list[Write]]:
        out: dict[tuple[str, str, str], list[Write]] = defaultdict(list)
        for write in sorted(self.writes, key=lambda w: w.seq):
            out[(write.tenant, write.kind, write.event_id)].append(write)
        return out

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for write in self.writes:
            counts[str(write.status or "no answer")] += 1
        return dict(sorted(counts.items()))


class Pacer:
    """Spreads writes evenly: at most ``rate`` per second over all threads (None: as fast as they go)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1 / rate if rate else 0.0
        self.next = time.monotonic()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            slot = max(self.next, time.monotonic())
            self.next = slot + self.interval
        pause = slot - time.monotonic()
        if pause > 0:
            time.sleep(pause)


class Client:
    """Sends writes as Salesforce would, one ``requests.Session`` per thread, and records each in the ledger."""

    def __init__(self, harness: Harness, ledger: Ledger, timeout: float = 90, wait: float = 0) -> None:
        self.harness = harness
        self.ledger = ledger
        self.timeout = timeout
        self.wait = wait
        self.local = threading.local()
        self.run_id = uuid.uuid4().hex[:8]

    @property
    def http(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.trust_env = False
        return self.local.session

    def request(self, method: str, path: str, tenant: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.harness.tenants[tenant].token}"}
        return self.http.request(
            method, f"{self.harness.stack.api_url}{path}", headers=headers, timeout=self.timeout, **kwargs
        )

    def body(self, kind: str, op: str, event_id: str, state: State | None, before: State | None) -> dict[str, Any]:
        if kind == POSTBACK and op == CREATE:
            assert state is not None
            return {"id": event_id, **state.fields()}
        if kind == POSTBACK and op == UPDATE:
            assert state is not None
            original = {"id": event_id, **before.fields()} if before else {"id": event_id}
            return {"original": original, "new": state.fields()}
        if kind == POSTBACK and op == DELETE:
            assert before is not None
            return {"id": event_id, "organizerEmail": before.organizer, "attendees": [a for a, _ in before.attendees]}
        if kind == MEETING and op in (CREATE, UPDATE):
            assert state is not None
            return {"id": event_id, **state.fields()}
        assert before is not None
        return {"id": event_id, "organizerEmail": before.organizer}

    def send(
        self,
        tenant: str,
        kind: str,
        op: str,
        event_id: str,
        state: State | None,
        before: State | None,
        wait: float | None = None,
    ) -> Write:
        write = self.ledger.new(
            tenant=tenant,
            kind=kind,
            op=op,
            event_id=event_id,
            state=state if op != DELETE else before,
            correlation=f"{self.run_id}-{uuid.uuid4().hex[:12]}",
        )
        body = self.body(kind, op, event_id, state, before)
        body["salesforceCorrelationId"] = write.correlation
        params = {"wait": self.wait if wait is None else wait}
        write.sent_at = time.monotonic()
        try:
            response = self.request(METHODS[(kind, op)], PATHS[kind], tenant, json=body, params=params)
            write.status = response.status_code
            write.job_id = response.headers.get("X-Job-Id")
            try:
                write.answer = response.json()
            except ValueError:
                write.answer = response.text[:200]
        except requests.RequestException as exc:
            write.error = f"{type(exc).__name__}: {exc}"[:300]
        write.seconds = time.monotonic() - write.sent_at
        return write


def run_chains(
    client: Client,
    chains: Sequence[Chain],
    threads: int = 8,
    rate: float | None = None,
    retries_503: int = 5,
    pause_503: float = 1.0,
    stop: threading.Event | None = None,
) -> None:
    """Send every chain's writes in order, chains side by side on ``threads`` threads, at most ``rate`` writes a
    second; a write answered 503 (or not answered) is sent again after ``pause_503`` s, up to ``retries_503``
    times, as Salesforce retries."""
    work: queue.Queue[Chain] = queue.Queue()
    for chain in chains:
        work.put(chain)
    pacer = Pacer(rate)

    def worker() -> None:
        while not (stop and stop.is_set()):
            try:
                chain = work.get_nowait()
            except queue.Empty:
                return
            before: State | None = None
            for step in chain.steps:
                for _ in range(retries_503 + 1):
                    pacer.wait()
                    write = client.send(chain.tenant, chain.kind, step.op, chain.event_id, step.state, before)
                    if write.accepted or (write.status is not None and write.status != 503):
                        break
                    time.sleep(pause_503)
                if write.accepted:
                    before = step.state if step.op != DELETE else None

    pool = [threading.Thread(target=worker, name=f"client-{n}", daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()


# --- judging ---------------------------------------------------------------------------------------------------


@dataclass
class Findings:
    """What the judge found; every list holds short descriptions, the first few are printed."""

    checked_mailboxes: int = 0
    events: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    double_requests: list[str] = field(default_factory=list)
    misdirected: list[str] = field(default_factory=list)
    stray_cancels: list[str] = field(default_factory=list)
    requests_per_attendee: dict[int, int] = field(default_factory=dict)

    PROBLEMS = ("lost", "duplicated", "wrong", "stray", "double_requests", "misdirected", "stray_cancels")

    def problems(self) -> dict[str, list[str]]:
        return {name: getattr(self, name) for name in self.PROBLEMS if getattr(self, name)}

    @property
    def clean(self) -> bool:
        return not self.problems()

    def summary(self) -> str:
        counts = ", ".join(f"{name} {len(getattr(self, name))}" for name in self.PROBLEMS)
        return f"{self.events} events, {self.checked_mailboxes} mailboxes: {counts}"


def tagged(items: Iterable[dict[str, Any]], tag_id: str, kind: str, event_id: str) -> list[dict[str, Any]]:
    def prop(item: dict[str, Any], name: str) -> Any:
        return item["extendedProperties"].get(f"{TAG_SET}:{name}")

    return [
        i
        for i in items
        if prop(i, "DownsyncEventId") == event_id
        and prop(i, "DownsyncKind") == kind
        and prop(i, "DownsyncTenant") == tag_id
    ]


def same_content(item: dict[str, Any], state: State) -> bool:
    return (item["subject"], item["body"] or "", item["location"] or "", item["start"], item["end"]) == (
        state.subject,
        state.body,
        state.location,
        state.start,
        state.end,
    )


def final_states(ledger: Ledger, kind: str) -> dict[tuple[str, str], tuple[State | None, set[str], set[str]]]:
    """Per (tenant, event id): the last accepted state (None: deleted or never accepted), every mailbox an accepted
    write listed, and every attendee an accepted write listed."""
    out = {}
    for (tenant, write_kind, event_id), writes in ledger.chains().items():
        if write_kind != kind:
            continue
        accepted = [w for w in writes if w.accepted]
        final: State | None = None
        touched: set[str] = set()
        people: set[str] = set()
        for write in accepted:
            if write.state is not None:
                touched |= set(write.state.mailboxes())
                people |= {e for e, _ in write.state.invitees()}
            final = write.state if write.op != DELETE else None
        out[(tenant, event_id)] = (final, touched, people)
    return out


class Calendars:
    """The simulator's calendars, each read once per judgement."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.cache: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, email: str) -> list[dict[str, Any]]:
        if email not in self.cache:
            self.cache[email] = self.harness.sim.calendar(email) if email.endswith(f"@{DOMAIN}") else []
        return self.cache[email]


def judge_postbacks(harness: Harness, ledger: Ledger, findings: Findings | None = None) -> Findings:
    findings = findings or Findings()
    calendars = Calendars(harness)
    for (tenant, event_id), (final, touched, _) in final_states(ledger, POSTBACK).items():
        findings.events += 1
        tag_id = harness.tenants[tenant].tag_id
        holders = set(final.mailboxes()) if final else set()
        for email in sorted(touched | holders):
            findings.checked_mailboxes += 1
            items = tagged(calendars(email), tag_id, POSTBACK, event_id)
            where = f"{tenant}/{event_id} in {email}"
            if email in holders:
                assert final is not None
                if not items:
                    findings.lost.append(where)
                elif len(items) > 1:
                    findings.duplicated.append(f"{where}: {len(items)} items")
                elif not same_content(items[0], final):
                    findings.wrong.append(f"{where}: holds {items[0]['subject']!r}, last accepted {final.subject!r}")
            elif items:
                findings.stray.append(f"{where}: {len(items)} items, should hold none")
    return findings


def judge_meetings(
    harness: Harness, ledger: Ledger, findings: Findings | None = None, messages: list[dict[str, Any]] | None = None
) -> Findings:
    findings = findings or Findings()
    calendars = Calendars(harness)
    messages = harness.sim.messages() if messages is None else messages
    by_event: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for message in messages:
        props = message.get("extendedProperties") or {}
        by_event[(props.get(f"{TAG_SET}:DownsyncTenant"), props.get(f"{TAG_SET}:DownsyncEventId"))].append(message)
    per_attendee: dict[int, int] = defaultdict(int)
    organizers: dict[tuple[str, str], set[str]] = defaultdict(set)
    for write in ledger.writes:
        if write.kind == MEETING and write.accepted and write.state is not None:
            organizers[(write.tenant, write.event_id)].add(write.state.organizer.lower())
    for (tenant, event_id), (final, _, people) in final_states(ledger, MEETING).items():
        findings.events += 1
        tag_id = harness.tenants[tenant].tag_id
        where = f"{tenant}/{event_id}"
        sent_uids = {m["uid"] for m in by_event[(tag_id, event_id)]}
        for organizer in sorted(organizers[(tenant, event_id)]):
            findings.checked_mailboxes += 1
            items = [i for i in tagged(calendars(organizer), tag_id, MEETING, event_id) if not i["isCancelled"]]
            sent_uids |= {i["uid"] for i in items}
            if final is None or organizer != final.organizer.lower():
                if items:
                    findings.stray.append(f"{where} in {organizer}: {len(items)} items, should hold none")
                continue
            if not items:
                findings.lost.append(f"{where}: not in the organizer's calendar")
            elif len(items) > 1:
                findings.duplicated.append(f"{where}: {len(items)} items in the organizer's calendar")
            else:
                [item] = items
                attendees = {(a["email"].lower(), a["isRequired"]) for a in item["attendees"]}
                if not same_content(item, final) or attendees != final.invitees():
                    findings.wrong.append(f"{where}: the organizer holds {item['subject']!r}, not {final.subject!r}")
        expected = {e for e, _ in final.invitees()} if final else set()
        for email in sorted(people | expected):
            if not email.endswith(f"@{DOMAIN}"):
                continue
            findings.checked_mailboxes += 1
            copies = [
                i
                for i in calendars(email)
                if i["uid"] in sent_uids and not i["isCancelled"] and i["organizer"] != email
            ]
            if email in expected and not copies:
                findings.lost.append(f"{where}: no copy in {email}")
            elif len(copies) > 1:
                findings.duplicated.append(f"{where}: {len(copies)} copies in {email}")
            elif email not in expected and copies:
                findings.stray.append(f"{where}: a live copy in {email}, who is no longer invited")
            elif copies and final is not None and not same_content(copies[0], final):
                findings.wrong.append(f"{where}: {email}'s copy holds {copies[0]['subject']!r}, not {final.subject!r}")
        # Invitations, per attendee.
        inbox: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for message in sorted(by_event[(tag_id, event_id)], key=lambda m: m["seq"]):
            inbox[message["to"].lower()].append(message)
        for email, got in inbox.items():
            if email not in people:
                findings.misdirected.append(f"{where}: {got[0]['kind']} to {email}, never one of its attendees")
            per_attendee[sum(1 for m in got if m["kind"] == "request")] += 1
            open_request = False
            for message in got:
                if message["kind"] == "request":
                    if open_request:
                        findings.double_requests.append(f"{where}: {email} got a second request without a cancel")
                    open_request = True
                elif message["kind"] == "cancel":
                    open_request = False
            last = got[-1]["kind"]
            if email in expected and last == "cancel":
                findings.stray_cancels.append(f"{where}: {email} is invited but the last message was a cancel")
            if email not in expected and last != "cancel":
                findings.stray_cancels.append(f"{where}: {email} is no longer invited but got no cancel")
        for email in expected:
            if not inbox.get(email):
                findings.lost.append(f"{where}: {email} never got an invitation")
    findings.requests_per_attendee = dict(sorted(per_attendee.items()))
    return findings


def judge(harness: Harness, ledger: Ledger) -> Findings:
    findings = judge_postbacks(harness, ledger)
    if any(w.kind == MEETING for w in ledger.writes):
        judge_meetings(harness, ledger, findings)
    return findings


# --- the store, for what callers were told -------------------------------------------------------------------


@dataclass
class StoreCheck:
    refused_but_stored: list[str] = field(default_factory=list)  # answered 503, yet stored
    accepted_not_stored: list[str] = field(default_factory=list)  # answered 2xx, not stored
    unanswered_stored: int = 0
    unanswered_not_stored: int = 0
    wrongly_final: list[str] = field(default_factory=list)
    pending: int = 0
    codes: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.refused_but_stored or self.accepted_not_stored or self.wrongly_final)


def jobs_by_correlation(harness: Harness, correlations: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(correlations), 500):
        chunk = list(correlations[start : start + 500])
        rows = harness.sql("SELECT correlation_id, id FROM job WHERE correlation_id = ANY(:c)", c=chunk)
        found.update({c: j for c, j in rows})
    return found


def resolve_unanswered(harness: Harness, ledger: Ledger) -> None:
    """Writes that got no answer count as accepted when the store holds them (run once the store answers)."""
    unanswered = [w for w in ledger.writes if w.status is None]
    stored = jobs_by_correlation(harness, [w.correlation for w in unanswered]) if unanswered else {}
    for write in unanswered:
        if write.correlation in stored:
            write.stored_unanswered = True
            write.job_id = stored[write.correlation]


def check_store(
    harness: Harness, ledger: Ledger, expected_codes: Callable[[str, str], set[str]] | None = None
) -> StoreCheck:
    """``expected_codes(event_id, mailbox)``: final codes that are right for that mailbox besides NoError."""
    check = StoreCheck()
    stored = jobs_by_correlation(harness, [w.correlation for w in ledger.writes])
    # A repeated meeting create is answered with the first create's job: stored under that job, not its own.
    answered_jobs = [w.job_id for w in ledger.writes if w.accepted and w.job_id]
    known_jobs: set[str] = set()
    for start in range(0, len(answered_jobs), 500):
        rows = harness.sql("SELECT id FROM job WHERE id = ANY(:ids)", ids=answered_jobs[start : start + 500])
        known_jobs |= {job_id for (job_id,) in rows}
    for write in ledger.writes:
        what = f"{write.op} {write.tenant}/{write.event_id} ({write.correlation})"
        if write.status == 503 and write.correlation in stored:
            check.refused_but_stored.append(what)
        elif write.accepted and write.correlation not in stored and write.job_id not in known_jobs:
            check.accepted_not_stored.append(what)
        elif write.status is None:
            if write.correlation in stored:
                check.unanswered_stored += 1
            else:
                check.unanswered_not_stored += 1
    job_ids = [w.job_id for w in ledger.writes if w.accepted and w.job_id]
    codes: dict[str, int] = defaultdict(int)
    for start in range(0, len(job_ids), 500):
        rows = harness.sql(
            "SELECT j.event_id, r.mailbox, r.error_code, r.message FROM jobresult r JOIN job j ON j.id = r.job_id "
            "WHERE r.job_id = ANY(:ids)",
            ids=job_ids[start : start + 500],
        )
        for event_id, mailbox_name, code, message in rows:
            codes[code] += 1
            if code == "Pending":
                check.pending += 1
            elif code != "NoError" and code not in (expected_codes(event_id, mailbox_name) if expected_codes else ()):
                check.wrongly_final.append(f"{event_id} {mailbox_name}: {code} ({(message or '')[:120]})")
    check.codes = dict(sorted(codes.items()))
    return check


def pending_results(harness: Harness, ledger: Ledger) -> int:
    job_ids = [w.job_id for w in ledger.writes if w.accepted and w.job_id]
    if not job_ids:
        return 0
    [(count,)] = harness.sql(
        "SELECT count(*) FROM jobresult WHERE error_code = 'Pending' AND job_id = ANY(:ids)", ids=job_ids
    )
    return int(count)


def due_placements(harness: Harness) -> int:
    [(count,)] = harness.sql("SELECT count(*) FROM placement WHERE due_at IS NOT NULL")
    return int(count)


def wait_converged(harness: Harness, ledger: Ledger, timeout: float, since: float | None = None) -> float | None:
    """Seconds from ``since`` (default: now) until every result of the ledger's jobs is final and the calendars
    hold exactly what they should; None if that did not happen within ``timeout``."""
    since = time.monotonic() if since is None else since
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while time.monotonic() < deadline:
        try:
            pending = pending_results(harness, ledger)
            findings = judge(harness, ledger) if pending == 0 else None
        except Exception as exc:  # the store or the simulator is still coming back
            pending, findings = -1, None
            log(f"  (not readable yet: {type(exc).__name__})")
        if findings is not None and findings.clean:
            return time.monotonic() - since
        if time.monotonic() - last_report > 10:
            last_report = time.monotonic()
            state = (
                f"{pending} results pending"
                if pending
                else f"calendars not right yet: {findings.summary() if findings else '-'}"
            )
            log(f"  converging: {state}")
        time.sleep(1)
    return None


def wait_quiet(harness: Harness, timeout: float) -> int:
    """Wait until no placement has work due (late-landing checks included); returns how many still have."""
    deadline = time.monotonic() + timeout
    due = due_placements(harness)
    while due and time.monotonic() < deadline:
        time.sleep(1)
        due = due_placements(harness)
    return due


def show(title: str, items: Sequence[str], limit: int = 5) -> None:
    if items:
        print(f"  {title}: {len(items)}", flush=True)
        for item in items[:limit]:
            print(f"    - {item}", flush=True)


def report_findings(findings: Findings, store: StoreCheck | None = None) -> None:
    print(f"  judged: {findings.summary()}", flush=True)
    for name, items in findings.problems().items():
        show(name, items)
    if store is not None:
        print(
            f"  store: result codes {store.codes}; answered 503 yet stored {len(store.refused_but_stored)}; "
            f"answered 2xx, not stored {len(store.accepted_not_stored)}; no answer: stored {store.unanswered_stored}, "
            f"not stored {store.unanswered_not_stored}; wrongly final {len(store.wrongly_final)}",
            flush=True,
        )
        show("answered 503 yet stored", store.refused_but_stored)
        show("answered 2xx, not stored", store.accepted_not_stored)
        show("wrongly final", store.wrongly_final)

"""The outbox on a real store (SQLite): deliveries written with the close of their job, results found by scanning
(once each), claims under a lease, back-off, the retry window, redelivery. Sending is a function the test gives."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, col, select

from api_shim.jobs.schemas import JobView
from downsync.core.model import POSTBACK
from downsync.db import session_scope
from downsync.jobs import close_jobs
from downsync.models import ApiClient, Job, JobResult, WebhookAttempt, WebhookDelivery, WebhookSubscription, utcnow
from downsync.settings import Settings
from downsync.webhooks import delivery, service, signing, subscriptions, urls
from downsync.webhooks.delivery import Answer
from tests.downsync.core.harness import World
from tests.downsync.core.test_converge import appointment

BOB, CAROL = "bob@x.test", "carol@x.test"
SETTINGS = Settings(
    environment="test",
    webhook_timeout_seconds=1,
    webhook_retry_base_seconds=10,
    webhook_retry_max_seconds=100,
    webhook_retry_seconds=100,
)


def local(host: str, port: int) -> list[urls.Address]:
    return urls.resolve("127.0.0.1", port)


def subscribe(world: World, tenant: str = "acme", each_result: bool = False, client: ApiClient | None = None) -> str:
    with session_scope(world.engine) as session:
        created, _ = subscriptions.create(
            session,
            world.tenant_id(tenant),
            "http://receiver.test/hook",
            SETTINGS,
            world.clock.now - timedelta(seconds=1),
            each_result=each_result,
            client=client,
            resolver=local,
        )
        return created.id


def deliveries(world: World, subscription_id: str | None = None) -> list[WebhookDelivery]:
    with Session(world.engine) as session:
        query = select(WebhookDelivery).order_by(col(WebhookDelivery.created_at), col(WebhookDelivery.event))
        if subscription_id:
            query = query.where(WebhookDelivery.subscription_id == subscription_id)
        return list(session.exec(query).all())


def job_document(world: World, job_id: str) -> dict[str, object]:
    with Session(world.engine) as session:
        job = session.get(Job, job_id)
        assert job is not None
        results = session.exec(select(JobResult).where(JobResult.job_id == job_id).order_by(col(JobResult.position)))
        return json.loads(JobView.of(job, list(results)).model_dump_json())


def test_a_closed_job_gets_a_delivery_per_subscription_of_its_tenant_in_the_closing_transaction() -> None:
    world = World.create(("acme", "globex"))
    ours, theirs = subscribe(world), subscribe(world, "globex")
    accepted = world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    world.settle()
    [row] = deliveries(world)
    assert (row.subscription_id, row.event, row.job_id, row.state) == (
        ours,
        service.JOB_FINAL,
        accepted.job.id,
        "pending",
    )
    assert json.loads(row.body) == job_document(world, accepted.job.id)
    assert json.loads(row.body)["state"] == "succeeded" and deliveries(world, theirs) == []


def test_a_close_rolled_back_leaves_no_delivery_and_the_next_close_writes_one() -> None:
    world = World.create()
    subscribe(world)
    accepted = world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    with session_scope(world.engine) as session:
        session.exec(update(JobResult).values(error_code="NoError"))
    session = Session(world.engine)
    assert close_jobs(session, [accepted.job.id]) == [accepted.job.id]
    session.rollback()  # the closer died before committing: neither the close nor its delivery happened
    session.close()
    assert deliveries(world) == []
    with session_scope(world.engine) as session:
        assert close_jobs(session, [accepted.job.id]) == [accepted.job.id]
        assert close_jobs(session, [accepted.job.id]) == []  # closed once, told once
    assert [d.event for d in deliveries(world)] == [service.JOB_FINAL]


def test_each_result_subscriptions_get_every_result_once_however_often_it_is_scanned() -> None:
    world = World.create()
    each, plain = subscribe(world, each_result=True), subscribe(world)
    accepted = world.accept("acme", POSTBACK, "e1", appointment(), [BOB, CAROL], [BOB, CAROL])
    first, _ = world.due()
    world.run(first)
    for _ in range(3):  # every loop of every worker may scan; each result is written once
        with session_scope(world.engine) as session:
            service.scan(session, world.clock.now)
    [one] = deliveries(world, each)
    assert one.event == service.RESULT_FINAL and one.email in (BOB, CAROL)
    assert json.loads(one.body)["state"] == "pending"
    world.settle()
    with session_scope(world.engine) as session:
        service.scan(session, world.clock.now)
    events = sorted((d.event, d.email) for d in deliveries(world, each))
    assert events == [("job.final", None), ("result.final", BOB), ("result.final", CAROL)]
    assert [d.event for d in deliveries(world, plain)] == ["job.final"]
    assert all(d.job_id == accepted.job.id for d in deliveries(world))


def test_a_job_final_when_accepted_is_found_by_the_scan() -> None:
    world = World.create()
    subscription = subscribe(world)
    accepted = world.accept("acme", POSTBACK, "e1", None, [], [], operation="delete")  # no mailbox listed
    for _ in range(2):
        with session_scope(world.engine) as session:
            service.scan(session, world.clock.now)
    [row] = deliveries(world, subscription)
    assert (row.event, row.job_id, json.loads(row.body)["state"]) == ("job.final", accepted.job.id, "succeeded")


def test_a_revoked_clients_webhook_is_told_nothing() -> None:
    world = World.create()
    with session_scope(world.engine) as session:
        client = ApiClient(
            tenant_id=world.tenant_id("acme"), client_id="dsc_x", secret_hash="h", secret_encrypted="e", scopes="sync"
        )
        session.add(client)
    subscription = subscribe(world, client=client)
    with session_scope(world.engine) as session:
        session.exec(update(ApiClient).values(revoked_at=utcnow()))
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    world.settle()
    assert deliveries(world, subscription) == []


# --- sending --------------------------------------------------------------------------------------------------


class Receiver:
    """Answers each attempt as told, and keeps what it was sent."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[urls.Target, bytes, dict[str, str]]] = []

    def __call__(self, target: urls.Target, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
        self.sent.append((target, body, headers))
        return self.answers.pop(0) if self.answers else Answer(200)


def closed_job(world: World, each_result: bool = False) -> tuple[str, WebhookDelivery]:
    subscription = subscribe(world, each_result=each_result)
    world.accept("acme", POSTBACK, "e1", appointment(), [BOB], [BOB])
    world.settle()
    [row] = deliveries(world, subscription)
    return subscription, row


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def send(world: World, delivery_id: str, receiver: Receiver, clock: Clock) -> delivery.Sent:
    return delivery.deliver(delivery_id, world.engine, SETTINGS, now=clock, poster=receiver, resolver=local)


def test_a_delivery_is_signed_with_the_secret_and_a_2xx_ends_it() -> None:
    world = World.create()
    subscription, row = closed_job(world)
    with Session(world.engine) as session:
        sub = session.get(WebhookSubscription, subscription)
        assert sub is not None
        [secret] = subscriptions.live_secrets(sub, utcnow())
    receiver, clock = Receiver(Answer(204)), Clock()
    assert send(world, row.id, receiver, clock).status == "delivered"
    [(target, body, headers)] = receiver.sent
    assert body == row.body.encode() and str(target.addresses[0]) == "127.0.0.1"
    assert signing.verify(headers["X-Downsync-Signature"], body, secret, now=clock.now.timestamp())
    assert headers["X-Downsync-Event"] == "job.final" and headers["X-Downsync-Delivery"] == row.id
    [done] = deliveries(world)
    assert (done.state, done.attempts, done.last_status, done.due_at) == ("delivered", 1, 204, None)
    assert send(world, row.id, receiver, clock).status == "idle"  # delivered: never sent again by itself


def test_failures_back_off_exponentially_then_fail_when_the_window_ends_and_redeliver_starts_again() -> None:
    world = World.create()
    _, row = closed_job(world)
    receiver, clock = Receiver(*[Answer(503, "HTTP 503")] * 10, Answer(None, "ConnectError: refused")), Clock()
    started = clock.now
    gaps = []
    while True:
        sent = send(world, row.id, receiver, clock)
        [current] = deliveries(world)
        if sent.status == "failed":
            break
        assert sent.status == "retry" and current.due_at is not None
        assert send(world, row.id, receiver, clock).status == "idle"  # not due before its back-off
        gaps.append((current.due_at - clock.now).total_seconds())
        clock.now = current.due_at
    # 10 s, 20 s, 40 s (each lengthened by at most a fifth); the next (80 s) would end after the 100 s window.
    assert [round(g) // 10 * 10 for g in gaps] == [10, 20, 40]
    assert all(10 * 2**n <= g <= 12 * 2**n for n, g in enumerate(gaps))
    assert (current.state, current.attempts, current.due_at) == ("failed", 4, None)
    assert (clock.now - started).total_seconds() < SETTINGS.webhook_retry_seconds + 20
    with Session(world.engine) as session:
        log = session.exec(select(WebhookAttempt).order_by(col(WebhookAttempt.number))).all()
    assert [(a.number, a.status_code) for a in log] == [(1, 503), (2, 503), (3, 503), (4, 503)]
    with session_scope(world.engine) as session:
        again = service.redeliver(session, current, clock.now)
        assert (again.state, again.due_at) == ("pending", clock.now)
    assert send(world, row.id, Receiver(Answer(200)), clock).status == "delivered"


def test_a_receivers_retry_after_is_honoured_up_to_the_maximum() -> None:
    rng = random.Random(1)
    assert delivery.backoff(1, SETTINGS, None, rng) < 12
    assert delivery.backoff(1, SETTINGS, 50, rng) >= 50
    assert delivery.backoff(1, SETTINGS, 5000, rng) == 100
    assert delivery.backoff(30, SETTINGS, None, rng) <= 120


def test_a_claimed_delivery_is_nobody_elses_until_its_lease_runs_out() -> None:
    world = World.create()
    _, row = closed_job(world)
    now = utcnow()
    lease = delivery.lease_seconds(SETTINGS)
    with session_scope(world.engine) as session:
        assert delivery.take_due(session, now, redeliver_seconds=30, limit=10) == [row.id]
    with session_scope(world.engine) as session:
        assert delivery.take_due(session, now, redeliver_seconds=30, limit=10) == []  # sent recently
        first = delivery.claim(session, row.id, "a" * 32, now, lease)
        assert first is not None and delivery.claim(session, row.id, "b" * 32, now, lease) is None
    later = now + timedelta(seconds=lease + 1)  # the first worker died mid-send
    with session_scope(world.engine) as session:
        assert delivery.take_due(session, later, redeliver_seconds=30, limit=10) == [row.id]
        second = delivery.claim(session, row.id, "b" * 32, later, lease)
        assert second is not None
    # The first worker's late failure does not reschedule what the second now holds; its success would still count.
    with session_scope(world.engine) as session:
        assert delivery.record(session, first, Answer(500, "HTTP 500"), now, 1.0, later, SETTINGS) == "lost"
    with session_scope(world.engine) as session:
        assert delivery.record(session, second, Answer(200), later, 0.1, later, SETTINGS) == "delivered"
    [done] = deliveries(world)
    assert (done.state, done.attempts, done.lease_token) == ("delivered", 2, None)


def test_a_url_that_now_resolves_to_a_private_address_is_refused_at_delivery_time() -> None:
    world = World.create()
    _, row = closed_job(world)
    strict = SETTINGS.model_copy(update={"webhook_allow_private": False})
    receiver = Receiver()
    sent = delivery.deliver(row.id, world.engine, strict, poster=receiver, resolver=local)
    assert sent.status == "retry" and receiver.sent == []
    assert sent.answer is not None and "refused: the URL names a loopback address" in (sent.answer.error or "")

"""Result webhooks end to end: a real receiving server in the test process, the real API, workers and store.

Signed deliveries verifiable with the subscription's secret (both secrets during a rotation), each mailbox result when
asked, a receiver down for a while then back (attempts logged, back-off honoured), redelivery, other tenants kept out,
URLs refused (http and private addresses under production settings), and a worker killed mid-delivery losing nothing.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from sqlmodel import col, select

from downsync.db import get_engine, session_scope
from downsync.embedded import free_port
from downsync.models import Tenant, WebhookSubscription
from downsync.webhooks import signing, subscriptions
from tests.service.test_input import assert_error_shape, create_body
from tests.support.stack import TEST_SETTINGS, Stack

WEBHOOKS = "/api/salesforce/scheduler/webhooks"
BASE = float(TEST_SETTINGS["DOWNSYNC_WEBHOOK_RETRY_BASE_SECONDS"])
MAXIMUM = float(TEST_SETTINGS["DOWNSYNC_WEBHOOK_RETRY_MAX_SECONDS"])
LEASE = 4 * float(TEST_SETTINGS["DOWNSYNC_WEBHOOK_TIMEOUT_SECONDS"]) + 2


@pytest.fixture(autouse=True)
def one_backend_is_enough(stack: Stack) -> None:
    if stack.dialect.name != "ews":
        pytest.skip("webhooks do not depend on the calendar backend; the EWS stacks cover them")


# --- the receiving server ----------------------------------------------------------------------------------------


@dataclass
class Received:
    at: float
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def delivery(self) -> str:
        return self.headers["X-Downsync-Delivery"]

    @property
    def event(self) -> str:
        return self.headers["X-Downsync-Event"]

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on a free port of this process: keeps every request; answers ``statuses`` in turn, then 200;
    while ``hold`` is set, the first request runs ``on_hold`` and waits for ``hold`` before answering."""

    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    hold: threading.Event | None = None
    on_hold: Callable[[], None] | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/downsync"

    def up(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received(time.time(), self.path, dict(self.headers.items()), body))
                receiver.arrived.set()
                hold = receiver.hold
                if hold is not None:
                    receiver.hold = None
                    if receiver.on_hold is not None:
                        receiver.on_hold()
                    hold.wait(30)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def of(self, event: str | None = None, job_id: str | None = None) -> list[Received]:
        return [
            r
            for r in self.received
            if (event is None or r.event == event) and (job_id is None or r.document["jobId"] == job_id)
        ]

    def wait_for(self, check: Callable[[], bool], timeout: float = 30, what: str = "deliveries") -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} did not arrive; received: {[(r.event, r.path) for r in self.received]}")
            time.sleep(0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().up()
    yield server
    server.down()


# --- tenants, tokens, subscriptions -------------------------------------------------------------------------------


@dataclass
class Tenants:
    ours: str
    theirs: str


@pytest.fixture(scope="module")
def tenants(stack: Stack) -> Tenants:
    """Two tenants of this module's own, so no other test's jobs reach its receivers."""
    if stack.dialect.name != "ews":
        pytest.skip("EWS stacks only")
    names = Tenants(f"hooks-{uuid.uuid4().hex[:6]}", f"hooks-{uuid.uuid4().hex[:6]}")
    for key, name in (("hooks", names.ours), ("hooks-other", names.theirs)):
        stack.create_tenant(name)
        stack.tokens[key] = stack.run_cli("token", "create", "--tenant", name).stdout.strip()
    stack.tokens["hooks-read"] = stack.run_cli(
        "token", "create", "--tenant", names.ours, "--scopes", "availability"
    ).stdout.strip()
    return names


@pytest.fixture
def hooks(service: Stack, tenants: Tenants) -> Iterator[Stack]:
    """The stack; afterwards every webhook of the module's tenants is deleted, so nothing is sent to a closed port."""
    yield service
    with session_scope(get_engine(service.database_url)) as session:
        ids = session.exec(select(Tenant.id).where(col(Tenant.name).in_([tenants.ours, tenants.theirs]))).all()
        query = select(WebhookSubscription).where(col(WebhookSubscription.tenant_id).in_(ids))
        for found in session.exec(query).all():
            subscriptions.remove(session, found)


def register(stack: Stack, url: str, token: str = "hooks", **extra: Any) -> dict[str, Any]:
    response = stack.call("POST", WEBHOOKS, token=token, json={"url": url, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def write(stack: Stack, token: str = "hooks", attendees: tuple[str, ...] = ("bob@contoso.com",)) -> str:
    """A postback for the tenant, waited for until final; returns its job id."""
    body = create_body(attendees=[{"email": a, "isRequired": "true"} for a in attendees])
    response = stack.postback("POST", body, token=token, wait=20)
    assert response.status_code == 200, response.text
    return response.headers["X-Job-Id"]


def log(stack: Stack, webhook_id: str, token: str = "hooks") -> list[dict[str, Any]]:
    response = stack.call("GET", f"{WEBHOOKS}/{webhook_id}/deliveries", token=token)
    assert response.status_code == 200, response.text
    return response.json()["deliveries"]


def wait_log(stack: Stack, webhook_id: str, check: Callable[[list[dict[str, Any]]], bool], timeout: float = 30) -> list:
    deadline = time.monotonic() + timeout
    while True:
        entries = log(stack, webhook_id)
        if check(entries):
            return entries
        if time.monotonic() > deadline:
            raise AssertionError(f"the delivery log never got there: {json.dumps(entries, indent=1)[:3000]}")
        time.sleep(0.1)


# --- the tests ----------------------------------------------------------------------------------------------------


def test_a_final_job_is_posted_signed_with_the_webhooks_secret(hooks: Stack, receiver: Receiver) -> None:
    created = register(hooks, receiver.url)
    assert created["id"].startswith("wh_") and created["secret"].startswith("whsec_")
    assert created["url"] == receiver.url and created["eachResult"] is False
    shown = hooks.call("GET", f"{WEBHOOKS}/{created['id']}", token="hooks").json()
    assert "secret" not in shown and shown["secrets"] == [{"current": True, "expiresAt": None}]

    job_id = write(hooks, attendees=("bob@contoso.com", "carol@contoso.com"))
    receiver.wait_for(lambda: len(receiver.of("job.final", job_id)) == 1)
    [got] = receiver.of(job_id=job_id)
    # The body is the job exactly as GET /jobs/{id} shows it, and the signature verifies with the secret.
    assert got.document == hooks.job(job_id, token="hooks") and got.document["state"] == "succeeded"
    assert signing.verify(got.headers["X-Downsync-Signature"], got.body, created["secret"], now=time.time())
    assert not signing.verify(got.headers["X-Downsync-Signature"], got.body, "whsec_wrong", now=time.time())
    assert got.path == "/hooks/downsync" and got.headers["Content-Type"] == "application/json"
    assert got.headers["X-Downsync-Webhook"] == created["id"] and got.headers["X-Downsync-Attempt"] == "1"

    [entry] = wait_log(hooks, created["id"], lambda e: bool(e) and e[0]["state"] == "delivered")
    assert (entry["id"], entry["event"], entry["jobId"], entry["attempts"]) == (got.delivery, "job.final", job_id, 1)
    [attempt] = entry["attemptLog"]
    assert attempt["statusCode"] == 200 and attempt["error"] is None and attempt["durationMs"] >= 0


def test_each_result_is_posted_when_asked_and_the_cli_registers_lists_and_deletes(
    hooks: Stack, tenants: Tenants, receiver: Receiver
) -> None:
    printed = hooks.run_cli("webhook", "create", "--tenant", tenants.ours, "--url", receiver.url, "--each-result")
    fields = dict(line.split("=", 1) for line in printed.stdout.strip().splitlines())
    assert set(fields) == {"id", "secret"}
    plain = Receiver().up()
    try:
        other = register(hooks, plain.url)
        job_id = write(hooks, attendees=("bob@contoso.com", "carol@contoso.com"))
        receiver.wait_for(lambda: len(receiver.of(job_id=job_id)) == 4)
        plain.wait_for(lambda: len(plain.of(job_id=job_id)) == 1)
        time.sleep(1)  # nothing more comes
        results = receiver.of("result.final", job_id)
        mailboxes = sorted(r.headers["X-Downsync-Mailbox"] for r in results)
        assert mailboxes == ["alice@contoso.com", "bob@contoso.com", "carol@contoso.com"]
        assert len(receiver.of("job.final", job_id)) == 1 and len(receiver.of(job_id=job_id)) == 4
        assert [r.event for r in plain.of(job_id=job_id)] == ["job.final"]
        for got in receiver.of(job_id=job_id):
            assert signing.verify(got.headers["X-Downsync-Signature"], got.body, fields["secret"], now=time.time())

        listed = hooks.run_cli("webhook", "list", "--tenant", tenants.ours).stdout
        assert fields["id"] in listed and other["id"] in listed and fields["secret"] not in listed
        assert {w["id"] for w in hooks.call("GET", WEBHOOKS, token="hooks").json()["webhooks"]} == {
            fields["id"],
            other["id"],
        }
        assert "deleted" in hooks.run_cli("webhook", "delete", fields["id"]).stdout
        assert hooks.call("GET", f"{WEBHOOKS}/{fields['id']}", token="hooks").status_code == 404
        write(hooks)
        plain.wait_for(lambda: len(plain.received) == 2)
        assert len(receiver.received) == 4  # deleted: told nothing more
    finally:
        plain.down()


def test_rotation_signs_with_both_secrets_until_the_old_one_is_retired(hooks: Stack, receiver: Receiver) -> None:
    created = register(hooks, receiver.url)
    old = created["secret"]
    rotated = hooks.call("POST", f"{WEBHOOKS}/{created['id']}/rotate", token="hooks")
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old and [s["current"] for s in rotated.json()["secrets"]] == [True, False]

    first = write(hooks)
    receiver.wait_for(lambda: len(receiver.of(job_id=first)) == 1)
    [got] = receiver.of(job_id=first)
    header = got.headers["X-Downsync-Signature"]
    assert header.count("v1=") == 2
    for secret in (old, new):  # a receiver still holding the old secret, and one holding the new
        assert signing.verify(header, got.body, secret, now=time.time())

    retired = hooks.call("DELETE", f"{WEBHOOKS}/{created['id']}/previous-secret", token="hooks")
    assert retired.status_code == 200 and len(retired.json()["secrets"]) == 1
    second = write(hooks)
    receiver.wait_for(lambda: len(receiver.of(job_id=second)) == 1)
    [got] = receiver.of(job_id=second)
    assert got.headers["X-Downsync-Signature"].count("v1=") == 1
    assert signing.verify(got.headers["X-Downsync-Signature"], got.body, new, now=time.time())
    assert not signing.verify(got.headers["X-Downsync-Signature"], got.body, old, now=time.time())


def test_a_receiver_down_for_a_while_gets_it_later_with_every_attempt_logged_and_back_off_honoured(
    hooks: Stack, receiver: Receiver
) -> None:
    created = register(hooks, receiver.url)
    receiver.down()  # nothing listens: connections are refused
    job_id = write(hooks)
    wait_log(hooks, created["id"], lambda e: bool(e) and e[0]["attempts"] >= 2)
    receiver.statuses = [503, 503]  # back, but not well yet
    receiver.up()
    [entry] = wait_log(hooks, created["id"], lambda e: e[0]["state"] == "delivered", timeout=30)
    codes = [a["statusCode"] for a in entry["attemptLog"]]
    assert codes[-3:] == [503, 503, 200] and len(codes) >= 5, entry
    refused = [a for a in entry["attemptLog"] if a["statusCode"] is None]
    assert len(refused) >= 2 and all("ConnectError" in a["error"] for a in refused), entry
    assert entry["attemptLog"][-2]["error"].startswith("HTTP 503")
    # The receiver saw the last three attempts, numbered: each came no sooner than its back-off said.
    got = receiver.of(job_id=job_id)
    assert [int(r.headers["X-Downsync-Attempt"]) for r in got] == list(range(len(codes) - 2, len(codes) + 1))
    assert len({r.delivery for r in got}) == 1
    for earlier, later in itertools.pairwise(got):
        attempt = int(earlier.headers["X-Downsync-Attempt"])
        at_least = min(MAXIMUM, BASE * 2 ** (attempt - 1))
        gap = later.at - earlier.at
        assert at_least - 0.05 <= gap <= at_least * 1.2 + 2, (attempt, gap)


def test_redeliver_sends_a_delivery_again(hooks: Stack, receiver: Receiver) -> None:
    created = register(hooks, receiver.url)
    job_id = write(hooks)
    [entry] = wait_log(hooks, created["id"], lambda e: bool(e) and e[0]["state"] == "delivered")
    path = f"{WEBHOOKS}/{created['id']}/deliveries/{entry['id']}"
    again = hooks.call("POST", f"{path}/redeliver", token="hooks")
    assert again.status_code == 202 and again.json()["state"] == "pending", again.text
    receiver.wait_for(lambda: len(receiver.of(job_id=job_id)) == 2)
    first, second = receiver.of(job_id=job_id)
    assert first.delivery == second.delivery == entry["id"] and first.body == second.body
    assert signing.verify(second.headers["X-Downsync-Signature"], second.body, created["secret"], now=time.time())
    done = wait_log(hooks, created["id"], lambda e: e[0]["state"] == "delivered" and e[0]["attempts"] == 2)
    assert [a["statusCode"] for a in done[0]["attemptLog"]] == [200, 200]
    assert hooks.call("GET", path, token="hooks").json()["attempts"] == 2
    missing = hooks.call("POST", f"{WEBHOOKS}/{created['id']}/deliveries/whd_nosuch/redeliver", token="hooks")
    assert_error_shape(missing, 404, "ErrorDeliveryNotFound")


def test_a_tenant_sees_and_touches_only_its_own_webhooks(hooks: Stack, receiver: Receiver) -> None:
    ours = register(hooks, receiver.url)
    theirs = register(hooks, receiver.url, token="hooks-other")
    our_job = write(hooks)
    receiver.wait_for(lambda: len(receiver.of(job_id=our_job)) == 1)
    [entry] = wait_log(hooks, ours["id"], bool)
    base = f"{WEBHOOKS}/{ours['id']}"
    for method, path in (
        ("GET", base),
        ("DELETE", base),
        ("POST", f"{base}/rotate"),
        ("DELETE", f"{base}/previous-secret"),
        ("GET", f"{base}/deliveries"),
        ("GET", f"{base}/deliveries/{entry['id']}"),
        ("POST", f"{base}/deliveries/{entry['id']}/redeliver"),
    ):
        assert_error_shape(hooks.call(method, path, token="hooks-other"), 404, "ErrorWebhookNotFound")
    # Nor through its own webhook's path.
    stolen = hooks.call("GET", f"{WEBHOOKS}/{theirs['id']}/deliveries/{entry['id']}", token="hooks-other")
    assert_error_shape(stolen, 404, "ErrorDeliveryNotFound")
    listed = hooks.call("GET", WEBHOOKS, token="hooks-other").json()["webhooks"]
    assert [w["id"] for w in listed] == [theirs["id"]]
    assert hooks.call("GET", base, token="hooks").status_code == 200  # still there, untouched
    # The other tenant's webhook heard nothing of our job.
    assert len(receiver.of(job_id=our_job)) == 1 and log(hooks, theirs["id"], token="hooks-other") == []
    # Reading needs any credential of the tenant; changing needs the sync scope.
    assert hooks.call("GET", base, token="hooks-read").status_code == 200
    assert_error_shape(
        hooks.call("POST", WEBHOOKS, token="hooks-read", json={"url": receiver.url}), 403, "ErrorForbidden"
    )
    assert_error_shape(hooks.call("GET", WEBHOOKS, token=None), 401, "ErrorUnauthorized")


def test_urls_are_refused_with_422_naming_the_field(hooks: Stack, tenants: Tenants, receiver: Receiver) -> None:
    def refused(base: str, url: str, problem: str) -> None:
        answer = requests.post(
            f"{base}{WEBHOOKS}", json={"url": url}, headers={"Authorization": f"Bearer {hooks.tokens['hooks']}"}
        )
        payload = assert_error_shape(answer, 422, "ErrorInvalidRequest")
        assert [d["field"] for d in payload["details"]] == ["url"], payload
        assert problem in payload["details"][0]["problem"], payload

    # Anywhere: what no receiver can be.
    refused(hooks.api_url, "ftp://127.0.0.1/x", "must be an http or https URL")
    refused(hooks.api_url, f"http://user:pw@127.0.0.1:{receiver.port}/x", "may not hold a user name or password")
    refused(hooks.api_url, "http://no-such-host.invalid/x", "names a host that does not resolve")
    # Under production settings: https only, and no private, loopback or link-local receiver.
    api, production = hooks.extra_api(environment="production")
    try:
        refused(production, receiver.url, "must be an https URL")
        refused(production, f"https://127.0.0.1:{receiver.port}/x", "names a loopback address: 127.0.0.1")
        refused(production, "https://localhost/x", "names a loopback address: localhost")
        refused(production, "https://10.20.30.40/x", "names a private address")
        refused(production, "https://169.254.169.254/latest/meta-data", "names a link-local address")
        refused(production, "https://[::ffff:192.168.0.1]/x", "names a private address")
    finally:
        api.stop()
    env = {**hooks.env, "DOWNSYNC_ENVIRONMENT": "production"}
    cli = hooks.run_cli("webhook", "create", "--tenant", tenants.ours, "--url", receiver.url, env=env, check=False)
    assert cli.returncode == 1 and "must be an https URL" in cli.stderr and cli.stdout == ""
    assert hooks.call("GET", WEBHOOKS, token="hooks").json()["webhooks"] == []  # nothing was registered


def test_a_worker_killed_mid_delivery_loses_nothing(hooks: Stack, receiver: Receiver) -> None:
    created = register(hooks, receiver.url)
    workers = list(hooks.workers)
    killed_at: list[float] = []

    def kill() -> None:
        # Run by the receiver as the first delivery arrives, before it answers: its worker dies waiting for the answer.
        for worker in workers:
            worker.kill()
        killed_at.append(time.time())

    hold = threading.Event()
    receiver.on_hold, receiver.hold = kill, hold
    # Not waited for: the first delivery may come while the others are still being written.
    jobs = [hooks.postback("POST", create_body(), token="hooks", wait=0).headers["X-Job-Id"] for _ in range(3)]
    receiver.wait_for(lambda: bool(killed_at), what="the first delivery")
    assert receiver.hold is None and not any(w.alive() for w in workers)
    hold.set()  # its answer now goes nowhere
    held = receiver.received[0]
    hooks.workers.clear()
    hooks.start_worker()
    entries = wait_log(
        hooks, created["id"], lambda e: len(e) == 3 and all(d["state"] == "delivered" for d in e), timeout=LEASE + 40
    )
    assert sorted(d["jobId"] for d in entries) == sorted(jobs)
    assert {r.document["jobId"] for r in receiver.received} == set(jobs)
    again = [r for r in receiver.received[1:] if r.delivery == held.delivery]
    assert again, "the delivery in flight when its worker died was never sent again"
    # Sent again once its lease ran out, not before; the attempt that died with its worker was never recorded.
    assert again[0].at - held.at >= LEASE - 1, (again[0].at - held.at, killed_at[0] - held.at)
    [entry] = [d for d in entries if d["id"] == held.delivery]
    assert [a["statusCode"] for a in entry["attemptLog"]] == [200], entry

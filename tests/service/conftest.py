"""The running service, once per backend, and a clean slate for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ews_sim.app import Running
from ews_sim.testing import SERVICE_ACCOUNT, SERVICE_PASSWORD, SimClient
from tests.support.stack import Stack, database, machine_available, make_env, redis_for


@pytest.fixture(scope="session", params=["machine", "embedded"])
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, ews_simulator: Running
) -> Iterator[Stack]:
    backend = request.param
    if backend == "machine" and not machine_available():
        pytest.skip("the machine's PostgreSQL or Redis does not answer; the embedded backend covers these tests")
    directory = tmp_path_factory.mktemp(backend)
    with database(backend, directory) as db:
        redis_url, embedded = redis_for(backend, directory)
        stack = Stack(
            backend=backend,
            directory=directory,
            env=make_env(directory, db.url, redis_url),
            sim_url=ews_simulator.url,
            redis_url=redis_url,
            database_url=db.url,
            embedded_redis=embedded,
        )
        try:
            stack.run_cli("db", "upgrade")
            stack.run_cli(
                "tenant",
                "create",
                "contoso",
                "--ews-url",
                ews_simulator.ews_url,
                "--ews-username",
                SERVICE_ACCOUNT,
                "--ews-password",
                SERVICE_PASSWORD,
            )
            # Another organisation's connection: its own service account, and only Busy counts as busy.
            stack.run_cli(
                "tenant",
                "create",
                "other",
                "--ews-url",
                ews_simulator.ews_url,
                "--ews-username",
                "helpdesk@contoso.com",
                "--ews-password",
                "h3lp",
                "--busy-types",
                "Busy",
            )
            # A full sandbox copy of contoso's Salesforce org: the same Exchange organisation and service account,
            # and the same event ids.
            stack.run_cli(
                "tenant",
                "create",
                "sandbox",
                "--ews-url",
                ews_simulator.ews_url,
                "--ews-username",
                SERVICE_ACCOUNT,
                "--ews-password",
                SERVICE_PASSWORD,
            )
            tokens = (
                ("default", "contoso", "availability,sync"),
                ("read", "contoso", "availability"),
                ("write", "contoso", "sync"),
                ("other", "other", "availability,sync"),
                ("sandbox", "sandbox", "availability,sync"),
            )
            for key, tenant, scopes in tokens:
                created = stack.run_cli("token", "create", "--tenant", tenant, "--scopes", scopes)
                stack.tokens[key] = created.stdout.strip()
            stack.start_api()
            stack.start_worker()
            yield stack
        finally:
            stack.stop_workers()
            if stack.api is not None:
                stack.api.stop()
            if stack.embedded_redis is not None:  # a test may have restarted it
                stack.embedded_redis.stop()


@pytest.fixture
def service(stack: Stack, sim: SimClient) -> Iterator[Stack]:
    """The stack with its simulator reset, at least one live worker, and nothing left over afterwards."""
    stack.quiesce(timeout=0)
    if not any(w.alive() for w in stack.workers):
        stack.workers.clear()
        stack.start_worker()
    assert stack.api is not None and stack.api.alive(), stack.api.tail() if stack.api else "no API"
    yield stack
    sim.clear_faults()
    stack.quiesce()
    # Tests may add workers or run ones with special settings; the next test starts from one plain worker.
    plain = [w for w in stack.workers if not w.special and w.alive()]
    for worker in stack.workers:
        if worker.special or not plain or worker is not plain[0]:
            worker.stop()
    stack.workers = plain[:1]

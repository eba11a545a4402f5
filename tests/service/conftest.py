"""The running service, once per backend, and a clean slate for every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ews_sim.app import Running
from ews_sim.testing import SimClient
from tests.support.backends import DIALECTS
from tests.support.stack import Stack, database, machine_available, make_env, redis_for


@pytest.fixture(
    scope="session",
    params=[("machine", "ews"), ("machine", "graph"), ("embedded", "ews"), ("embedded", "graph")],
    ids=["machine-ews", "machine-graph", "embedded-ews", "embedded-graph"],
)
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, ews_simulator: Running
) -> Iterator[Stack]:
    backend, calendar = request.param
    if backend == "machine" and not machine_available():
        pytest.skip("the machine's PostgreSQL or Redis does not answer; the embedded backend covers these tests")
    if calendar == "graph" and ews_simulator.ca_file is None:
        pytest.skip("the simulator serves no HTTPS here, which Graph (msal) needs")
    directory = tmp_path_factory.mktemp(f"{backend}-{calendar}")
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
            dialect=DIALECTS[calendar],
            simulator=ews_simulator,
        )
        try:
            stack.run_cli("db", "upgrade")
            stack.create_tenant("contoso")
            # Another organisation's connection: credentials that reach only some mailboxes, and only Busy is busy.
            stack.create_tenant("other", credentials="limited", extra=["--busy-types", "Busy"])
            # A full sandbox copy of contoso's Salesforce org: the same Exchange organisation and credentials,
            # and the same event ids.
            stack.create_tenant("sandbox")
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

"""The worker process as `downsync worker` starts it: its settings differ from the API's where it can afford it."""

from __future__ import annotations

from pathlib import Path

from tests.support.stack import Stack


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += [child for child, parent in parents.items() if parent == pid]
    return found


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode(errors="replace").split("=", 1) for entry in raw if b"=" in entry)


def test_the_celery_worker_skips_the_pools_pre_ping_and_keeps_two_malloc_arenas(service: Stack) -> None:
    worker = service.workers[0]
    # The supervisor (`downsync worker`) starts the Celery worker as its child, with the worker's environment.
    children = [pid for pid in _descendants(worker.popen.pid) if pid != worker.popen.pid]
    assert children, "no worker process under the supervisor"
    env = _environment(children[0])
    assert env.get("DOWNSYNC_DATABASE_PRE_PING") == "false"
    assert env.get("MALLOC_ARENA_MAX") == "2"
    assert "DOWNSYNC_DATABASE_PRE_PING" not in service.env  # the worker's own default, not the test stack's


def test_the_worker_converges_a_messages_placements_on_as_many_threads_as_its_concurrency(service: Stack) -> None:
    # The stack's workers run with --concurrency=4 under downsync worker's default pool of threads.
    log = service.workers[0].log.read_text(errors="replace")
    assert "converging up to 4 placements of a message side by side" in log

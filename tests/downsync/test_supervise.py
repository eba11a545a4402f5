"""Worker and API processes start with few malloc arenas unless the operator says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from downsync.supervise import worker_environment

READ = "import os; print(os.environ.get('MALLOC_ARENA_MAX'))"


def test_the_worker_gets_two_malloc_arenas_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setenv("DOWNSYNC_SOMETHING", "kept")
    env = worker_environment()
    assert env["DOWNSYNC_SOMETHING"] == "kept"
    assert subprocess.run([sys.executable, "-c", READ], env=env, capture_output=True, text=True).stdout == "2\n"


def test_an_operators_malloc_arena_max_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert worker_environment()["MALLOC_ARENA_MAX"] == "4"


def test_the_api_limits_its_own_arenas_and_its_uvicorn_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    from downsync.cli import _few_malloc_arenas

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    _few_malloc_arenas()
    assert os.environ["MALLOC_ARENA_MAX"] == "2"  # what `--workers N`'s processes inherit
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    _few_malloc_arenas()
    assert os.environ["MALLOC_ARENA_MAX"] == "8"

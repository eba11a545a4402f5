"""The supervised worker starts with few malloc arenas unless the operator says otherwise."""

from __future__ import annotations

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

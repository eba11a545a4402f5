"""The project's static checks, as part of the suite: ruff everywhere, mypy on the core, the backends and the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_is_clean() -> None:
    lint = run(str(BIN / "ruff"), "check", ".")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    style = run(str(BIN / "ruff"), "format", "--check", ".")
    assert style.returncode == 0, style.stdout + style.stderr


def test_mypy_passes_on_the_core() -> None:
    checked = run(str(BIN / "mypy"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_dependencies_point_one_way() -> None:
    """Nothing outside the worker imports it, and exchangelib stays inside the EWS backend (and the simulator)."""
    offenders = []
    for path in [*ROOT.glob("api_shim/**/*.py"), *ROOT.glob("downsync/**/*.py")]:
        text = path.read_text()
        relative = path.relative_to(ROOT).as_posix()
        if "\nfrom worker" in text or "\nimport worker" in text:
            offenders.append(f"{relative} imports the worker package")
        if ("\nfrom exchangelib" in text or "\nimport exchangelib" in text) and not relative.startswith(
            "downsync/backends/ews/"
        ):
            offenders.append(f"{relative} imports exchangelib")
    assert offenders == []

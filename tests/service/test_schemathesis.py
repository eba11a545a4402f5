"""schemathesis against the real API process: every check, every operation, the three phases that generate from the
document (examples, coverage, fuzzing) and the stateful one. Any 5xx, dropped connection, answer outside the
document, schema-valid request refused or invalid one accepted fails the test.

Bounded for the suite (``DOWNSYNC_FUZZ_EXAMPLES``, default 8 per operation, a fixed seed); the figures of a larger
run are in the README. Workers are stopped meanwhile: this is about the HTTP layer, and the writes it stores are
dropped afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = os.environ.get("DOWNSYNC_FUZZ_EXAMPLES", "8")


@pytest.fixture(autouse=True)
def one_stack_is_enough(stack: Stack) -> None:
    if (stack.backend, stack.dialect.name) != ("embedded", "ews"):
        pytest.skip("the HTTP layer is fuzzed once, on the embedded EWS stack")


def test_schemathesis_finds_nothing(service: Stack, tmp_path: Path) -> None:
    tenant = f"fuzz-{uuid.uuid4().hex[:6]}"
    service.create_tenant(
        tenant, extra=["--rate-limit-writes", "10000/second", "--rate-limit-availability", "10000/second"]
    )
    token = service.run_cli("token", "create", "--tenant", tenant).stdout.strip()
    service.stop_workers()
    api, url = service.extra_api(postback_wait_seconds="0.5", postback_wait_max_seconds="0.5")
    try:
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                EXAMPLES,
                "--seed",
                "20261202",
                "--request-timeout",
                "30",
                "--header",
                f"Authorization: Bearer {token}",
                "--report-dir",
                str(tmp_path),
                "--no-color",
            ],
            cwd=ROOT,
            env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.api_shim.schemathesis_hooks"},
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        api.stop()
    summary = run.stdout[run.stdout.find("SUMMARY") :]
    assert run.returncode == 0 and "Failures:" not in summary, run.stdout[-8000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counts and int(counts.group(1)) == int(counts.group(2)) > 300, summary
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in summary, summary

"""Every fault scenario, one after another (each in its own process, on its own store and Redis), then a table.

    .venv/bin/python -m benchmarks.faults [--backend ews] [--only store_kills,throttling] [--keep]

Exits 0 when every scenario passed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

SCENARIOS = (
    "store_kills",
    "store_outage",
    "duplicates",
    "throttling",
    "killed_workers",
    "tenants",
    "failed_create",
    "redis_outage",
)
# The figures each scenario's row shows (all of them are in its own output).
HEADLINE = {
    "store_kills": ("converged after the kills stopped (s)", "answers", "wrongly final"),
    "store_outage": ("answered 503 yet stored", "answers", "converged after PostgreSQL returned (s)"),
    "duplicates": (
        "stall: requests per attendee (requests: attendees)",
        "slow: requests per attendee (requests: attendees)",
        "stall: cancellations sent",
        "slow: cancellations sent",
    ),
    "throttling": ("requests sooner than the back-off", "smallest gap after a throttled answer, same mailbox (ms)"),
    "killed_workers": ("slowest (s)", "drain after the last kill (s)"),
    "tenants": ("misdirected messages / stray cancellations", "reads"),
    "failed_create": ("corrected creates accepted and made", "reordering PATCHes that sent nothing"),
    "redis_outage": ("slowest answer (s), while down / overall", "converged after Redis returned (s)"),
}


def run(name: str, backend: str, keep: bool) -> dict[str, Any]:
    command = [sys.executable, "-m", f"benchmarks.faults.{name}", "--backend", backend, *(["--keep"] if keep else [])]
    print(f"\n######## {name}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    result: dict[str, Any] | None = None
    last = ""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[len("RESULT ") :])
            continue
        print(line, end="", flush=True)
        if line.strip():
            last = line.strip()
    code = process.wait()
    seconds = time.monotonic() - started
    if result is None:
        result = {"scenario": name, "pass": False, "figures": {}, "verdict": last or f"FAIL: exited {code}"}
    result["seconds"] = seconds
    result["pass"] = bool(result["pass"]) and code == 0
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| scenario | verdict | time | figures |", "| --- | --- | ---: | --- |"]
    for result in results:
        figures = result["figures"]
        shown = "; ".join(f"{k}: {figures[k]}" for k in HEADLINE.get(result["scenario"], ()) if k in figures)
        verdict = "PASS" if result["pass"] else result["verdict"][:160]
        lines.append(f"| {result['scenario']} | {verdict} | {result['seconds'] / 60:.1f} min | {shown} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.faults", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="ews")
    parser.add_argument("--only", default="", help="comma-separated scenario names (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep every scenario's logs folder")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()] or list(SCENARIOS)
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"no such scenario: {', '.join(sorted(unknown))}; there are {', '.join(SCENARIOS)}")
    started = time.monotonic()
    results = [run(name, args.backend, args.keep) for name in chosen]
    print(f"\n######## summary (backend {args.backend}, {(time.monotonic() - started) / 60:.1f} min)\n", flush=True)
    print(table(results), flush=True)
    failed = [r["scenario"] for r in results if not r["pass"]]
    print("\nPASS" if not failed else f"\nFAIL: {', '.join(failed)}", flush=True)
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())

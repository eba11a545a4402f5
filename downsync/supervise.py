"""Keeping a worker process alive: restart it when it dies, pass on the signals that stop it.

Celery exits on some broker failures (kombu cannot restore unacknowledged messages to a Redis that is
gone); accepted work is safe in the store either way, and a fresh worker picks it up.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from types import FrameType

log = logging.getLogger(__name__)


def worker_environment() -> dict[str, str]:
    # glibc gives each thread that allocates its own malloc arena (up to 8 per core), and a worker's 16 threads
    # held ~19 MB in them after ten minutes; two arenas cost no measurable speed here. An operator's setting wins.
    return {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}


def supervise(command: list[str], max_delay: float = 30.0) -> int:
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    delay = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(command, env=worker_environment())
        code = child.wait()
        # Only a stop we passed on ends supervision: Celery also exits with 0 after an "unrecoverable" error.
        if stopping:
            return code
        # A worker that ran a while died of something new: start again quickly.
        delay = 1.0 if time.monotonic() - started > 60 else min(delay * 2, max_delay)
        print(f"downsync worker: the worker exited with {code}; restarting in {delay:.0f} s", flush=True)
        time.sleep(delay)


if __name__ == "__main__":
    # ``downsync worker`` execs this (python -m downsync.supervise COMMAND...) so that the long-lived supervisor
    # holds only the standard library, not what the command line imported to check the store.
    import sys

    if len(sys.argv) < 2:
        sys.exit("usage: python -m downsync.supervise COMMAND [ARGS...]")
    sys.exit(supervise(sys.argv[1:]))

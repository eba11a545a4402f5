"""``python -m worker [--no-dispatch] [Celery's worker options]``: the Celery worker that ``downsync worker`` runs
(under its supervisor, or alone with ``--no-supervise``); ``python -m worker scheduler`` runs the dispatcher alone.

The command line lives in ``downsync.cli``, which checks the store and then starts this module in a process of its
own, so nothing outside this package imports it (and the worker does not carry the CLI's imports for its life).
"""

from __future__ import annotations

import sys


def celery_worker(argv: list[str]) -> None:
    from worker import celery_app as worker_module

    worker_module.dispatch_enabled = "--no-dispatch" not in argv
    extra = [a for a in argv if a != "--no-dispatch"]
    args = ["worker", "--loglevel=INFO"]
    if not any(a.startswith(("--pool", "-P")) for a in extra):
        # Exchange calls wait on the network, so threads serve them best.
        args.append("--pool=threads")
    if not any(a.startswith(("--concurrency", "-c")) for a in extra):
        args.append("--concurrency=8")
    worker_module.app.worker_main([*args, *extra])


def scheduler() -> int:
    from downsync.observability import configure_logging
    from worker.scheduler import run

    configure_logging()
    return run()


if __name__ == "__main__":
    if sys.argv[1:2] == ["scheduler"]:
        sys.exit(scheduler())
    celery_worker(sys.argv[1:])

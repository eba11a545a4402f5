"""Prometheus metrics: what operators watch (``deploy/grafana/downsync.json``, ``deploy/prometheus/alerts.yml``).

Labels are bounded: routes are templates, tenants are few, codes are Exchange's. No mailbox, event or job id is ever
a label. The API serves ``/metrics`` (all its processes together when ``PROMETHEUS_MULTIPROC_DIR`` is set, as
``downsync api --workers N`` does); each worker serves its own on ``DOWNSYNC_WORKER_METRICS_PORT``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from downsync.core.errors import GatewayError, TransientError

T = TypeVar("T")
LATENCY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SLOW = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 14400, 86400)

HTTP_REQUESTS = Counter(
    "downsync_http_requests_total", "HTTP requests answered", ["route", "method", "status", "tenant"]
)
HTTP_SECONDS = Histogram("downsync_http_request_seconds", "Time to answer", ["route", "method"], buckets=LATENCY)
JOB_FINAL_SECONDS = Histogram(
    "downsync_job_final_seconds", "From a write accepted to every mailbox final", ["kind", "state"], buckets=SLOW
)
RESULTS = Counter("downsync_results_total", "Mailbox results made final", ["kind", "code"])
EXCHANGE_CALLS = Counter("downsync_exchange_calls_total", "Calls to Exchange", ["backend", "operation", "code"])
EXCHANGE_SECONDS = Histogram(
    "downsync_exchange_call_seconds", "Time of a call to Exchange", ["backend", "operation"], buckets=LATENCY
)
THROTTLED = Counter("downsync_exchange_throttled_total", "Exchange asked to wait", ["backend"])
BACKOFF_SECONDS = Counter("downsync_exchange_backoff_seconds_total", "Seconds Exchange asked to wait", ["backend"])
RETRIES = Counter("downsync_retries_total", "Tries that will be made again", ["reason"])
REDISPATCHED = Counter("downsync_work_redispatched_total", "Due work sent to the broker again", ["reason"])
LEASES_LOST = Counter("downsync_leases_lost_total", "Claims that ended without their outcome recorded", ["reason"])
DEADLINE_MISSES = Counter(
    "downsync_availability_deadline_misses_total", "Mailboxes without a free/busy answer by the deadline", ["backend"]
)
BUG_REPORTS = Counter("downsync_internal_errors_total", "Failures that are bugs (reported to Sentry)", ["where"])


def observe_call(backend: str, operation: str, call: Callable[[], T]) -> T:
    """Time one call to Exchange and count its outcome by code (NoError, or the error's)."""
    started = time.perf_counter()
    code = "NoError"
    try:
        return call()
    except GatewayError as error:
        code = error.code
        if isinstance(error, TransientError) and error.throttled:
            THROTTLED.labels(backend).inc()
            BACKOFF_SECONDS.labels(backend).inc(error.back_off or 0)
        raise
    except Exception:
        code = "ErrorInternalServerError"
        raise
    finally:
        EXCHANGE_CALLS.labels(backend, operation, code).inc()
        EXCHANGE_SECONDS.labels(backend, operation).observe(time.perf_counter() - started)


class MeteredGateway:
    """A ``CalendarGateway`` with every call timed and counted; it adds nothing else."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.backend: str = inner.backend

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target):
            return target

        def call(*args: Any, **kwargs: Any) -> Any:
            return observe_call(self.backend, name, lambda: target(*args, **kwargs))

        return call


class StoreGauges(Collector):
    """Read at every scrape: the broker queue's length, and the work due and how long the oldest has waited."""

    def __init__(self, read: Callable[[], tuple[int, int, float | None]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            queued, due, oldest = self.read()
        except Exception:  # a scrape must answer even when the store or broker does not
            return
        yield GaugeMetricFamily("downsync_queue_depth", "Messages waiting in the broker", value=queued)
        yield GaugeMetricFamily("downsync_pending_placements", "Mailboxes with work due or scheduled", value=due)
        yield GaugeMetricFamily(
            "downsync_oldest_pending_seconds", "Age of the oldest work not done yet", value=oldest or 0.0
        )


def exposition(extra: Collector | None = None) -> bytes:
    """The text format of every metric of this process, or of all the API's processes in multiprocess mode."""
    registry: Any
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    body = generate_latest(registry)
    if extra is not None:
        own = CollectorRegistry()
        own.register(extra)
        body += generate_latest(own)
    return body

"""Prometheus metrics on the API and on a worker: bounded labels, and the figures operators act on."""

from __future__ import annotations

import re
import time

import requests
from prometheus_client.parser import text_string_to_metric_families

from downsync.embedded import free_port
from ews_sim.testing import SimClient
from tests.service.test_postback import create_body, event_id
from tests.support.stack import Stack


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = requests.get(url, timeout=10).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    return sum(v for got, v in samples.get(name, []) if all(got.get(k) == w for k, w in labels.items()))


def test_the_api_and_a_worker_export_what_operators_watch(service: Stack, sim: SimClient) -> None:
    port = free_port()
    worker = service.start_worker(worker_metrics_port=str(port))
    for other in [w for w in service.workers if w is not worker]:
        other.stop()
    service.workers = [worker]
    eid = event_id()
    assert service.postback("POST", create_body(eid)).status_code == 200
    api = scrape(f"{service.api_url}/metrics")
    route = "/api/salesforce/scheduler/postback"
    assert value(api, "downsync_http_requests_total", route=route, method="POST", status="200", tenant="contoso") >= 1
    assert "downsync_queue_depth" in api and "downsync_oldest_pending_seconds" in api
    deadline = time.monotonic() + 10
    while True:
        work = scrape(f"http://127.0.0.1:{port}/metrics")
        if (
            value(work, "downsync_job_final_seconds_count", kind="postback", state="succeeded") >= 1
            or time.monotonic() > deadline
        ):
            break
        time.sleep(0.2)
    backend = service.dialect.name
    assert value(work, "downsync_exchange_calls_total", backend=backend, operation="find", code="NoError") >= 3
    assert value(work, "downsync_results_total", kind="postback", code="NoError") >= 3
    assert value(work, "downsync_job_final_seconds_count", kind="postback", state="succeeded") >= 1
    # Labels stay bounded: no mailbox address or event id in any of them.
    for samples in (api, work):
        for entries in samples.values():
            for labels, _ in entries:
                assert not any("@" in v or eid in v for v in labels.values()), labels
    sim.fault(operation=service.dialect.find, count=1, **service.dialect.throttle(200))
    assert service.postback("POST", create_body(event_id()), wait=20).status_code == 200
    work = scrape(f"http://127.0.0.1:{port}/metrics")
    assert value(work, "downsync_exchange_throttled_total", backend=backend) >= 1
    assert value(work, "downsync_retries_total", reason="throttled") >= 1
    assert re.search(
        r"downsync_exchange_call_seconds_bucket", requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    )

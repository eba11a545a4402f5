"""The Grafana dashboard and the Prometheus alerts ask only for metrics the service exports, with labels those
metrics have, and the alert file has the shape Prometheus loads."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

from downsync import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "downsync.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# What Prometheus appends to a family's name: counters' _total, histograms' series (and _created, never queried).
SUFFIXES = re.compile(r"_(bucket|count|sum|total)$")
METRIC = re.compile(r"\bdownsync_\w+")
# A selector's label matchers: downsync_x{label="v", other=~"..."}.
SELECTOR = re.compile(r"(downsync_\w+)\{([^}]*)\}")
MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
DURATION = re.compile(r"^\d+(ms|s|m|h|d|w|y)$")


def exported() -> dict[str, set[str]]:
    """Every metric family the service exports, with its label names: the registered ones (imported with
    downsync.metrics) and the gauges the API computes at each scrape (``StoreGauges``)."""
    families: dict[str, set[str]] = {}
    for family in REGISTRY.collect():
        if family.name.startswith("downsync_"):
            families[family.name] = {label for sample in family.samples for label in sample.labels} - {"le"}
    for family in metrics.StoreGauges(lambda: (0, 0, 0.0)).collect():
        families[family.name] = set()
    # A family with no sample yet shows no labels: read them off the metric objects themselves.
    for value in vars(metrics).values():
        if isinstance(value, metrics.Counter | metrics.Histogram):
            name = SUFFIXES.sub("", value._name)
            families[name] = set(value._labelnames)
    return families


def family(name: str) -> str:
    return SUFFIXES.sub("", name)


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
    return queries


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def problems(expr: str, known: dict[str, set[str]]) -> list[str]:
    found = []
    names = METRIC.findall(expr)
    if not names:
        found.append("names no downsync metric")
    for name in names:
        if family(name) not in known:
            found.append(f"{name} is not exported")
    labels_in_expr: set[str] = set()
    for name, matchers in SELECTOR.findall(expr):
        for label in MATCHER.findall(matchers):
            labels_in_expr.add(label)
            if family(name) in known and label not in known[family(name)]:
                found.append(f"{name} has no label {label!r}")
    for grouping in GROUPING.findall(expr):
        # A grouping label must be one of some metric of the expression (``le`` of a histogram's buckets).
        allowed = {"le"}.union(*(known.get(family(n), set()) for n in names))
        for label in (part.strip() for part in grouping.split(",")):
            if label and label not in allowed:
                found.append(f"groups by {label!r}, which none of its metrics has")
    return found


def test_the_exported_metrics_are_what_the_checks_compare_with() -> None:
    known = exported()
    assert known["downsync_http_requests"] == {"route", "method", "status", "tenant"}
    assert known["downsync_exchange_call_seconds"] == {"backend", "operation"}
    assert {"downsync_queue_depth", "downsync_pending_placements", "downsync_oldest_pending_seconds"} <= set(known)


def test_the_checks_catch_a_wrong_query() -> None:
    known = exported()
    assert problems('sum(rate(downsync_http_requests_total{status="429"}[5m]))', known) == []
    assert problems("rate(downsync_http_request_total[5m])", known) == ["downsync_http_request_total is not exported"]
    assert problems('rate(downsync_results_total{backend="ews"}[5m])', known) == [
        "downsync_results_total has no label 'backend'"
    ]
    assert problems("sum by (tenant) (rate(downsync_exchange_calls_total[5m]))", known) == [
        "groups by 'tenant', which none of its metrics has"
    ]


@pytest.mark.parametrize("source", ["dashboard", "alerts"])
def test_every_query_names_only_exported_metrics_and_their_labels(source: str) -> None:
    known = exported()
    queries = dashboard_queries() if source == "dashboard" else [(r["alert"], r["expr"]) for r in alert_rules()]
    assert queries
    wrong = {f"{title}: {expr}": problems(expr, known) for title, expr in queries if problems(expr, known)}
    assert not wrong, json.dumps(wrong, indent=2)


def test_the_dashboard_shows_what_operators_need() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "downsync" and board["schemaVersion"] >= 36
    used = {family(name) for _, expr in dashboard_queries() for name in METRIC.findall(expr)}
    # Every metric the issue asked the dashboard to cover (metrics added later may come without a panel).
    required = {
        "downsync_http_requests",
        "downsync_http_request_seconds",
        "downsync_job_final_seconds",
        "downsync_results",
        "downsync_exchange_calls",
        "downsync_exchange_call_seconds",
        "downsync_exchange_throttled",
        "downsync_exchange_backoff_seconds",
        "downsync_retries",
        "downsync_work_redispatched",
        "downsync_leases_lost",
        "downsync_availability_deadline_misses",
        "downsync_internal_errors",
        "downsync_queue_depth",
        "downsync_pending_placements",
        "downsync_oldest_pending_seconds",
    }
    assert required <= used, required - used
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def test_the_alert_file_is_prometheus_rule_syntax() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    names = set()
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"]), rule["alert"]
            assert rule["alert"] not in names
            names.add(rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert rule["expr"].count("(") == rule["expr"].count(")"), rule["expr"]
            assert DURATION.match(rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in ("page", "ticket")
            assert all(isinstance(v, str) for v in rule["labels"].values())
            assert {"summary", "description"} <= set(rule["annotations"])
    # What the issue asks an operator to be told about.
    expressions = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    assert "downsync_oldest_pending_seconds" in expressions["DownsyncOldestPendingWorkTooOld"]
    assert 'code!="NoError"' in expressions["DownsyncFinalErrorRate"]
    assert "downsync_exchange_throttled_total" in expressions["DownsyncExchangeThrottling"]
    assert "downsync_availability_deadline_misses_total" in expressions["DownsyncAvailabilityDeadlineMisses"]
    assert 'downsync_exchange_calls_total{code="ErrorAccessDenied"}' in expressions["DownsyncCredentialsRefused"]
    assert "downsync_internal_errors_total" in expressions["DownsyncInternalErrors"]

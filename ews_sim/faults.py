"""Fault injection rules: the failures real Exchange produces, before any side effect, as throttling does.

Rules apply to both front doors. EWS operations are named as their SOAP elements (``CreateItem``);
Graph operations are ``graph.createEvent``, ``graph.listEvents``, ... (``ews_sim.graph.routes.OPERATIONS``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

EFFECTS = ("responseCode", "httpStatus", "hang", "drop", "latencyMs")
HTTP_STATUSES = (401, 429, 500, 503, 504)


@dataclass
class Rule:
    id: int
    operation: str | None = None
    mailbox: str | None = None
    count: int | None = None
    probability: float | None = None
    seed: int | None = None
    response_code: str | None = None
    back_off_ms: int | None = None
    http_status: int | None = None
    latency_ms: int = 0
    jitter_ms: int = 0
    hang: bool = False
    drop: bool = False
    hang_ms: int = 300_000
    retry_after_s: int | None = None
    rng: random.Random = field(default_factory=random.Random, repr=False)

    @property
    def is_latency_only(self) -> bool:
        return not (self.response_code or self.http_status or self.hang or self.drop)

    def matches(self, operation: str, mailboxes: list[str]) -> bool:
        if self.operation and self.operation != operation:
            return False
        return not self.mailbox or self.mailbox in mailboxes

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        for key, value in (
            ("operation", self.operation),
            ("mailbox", self.mailbox),
            ("count", self.count),
            ("probability", self.probability),
            ("seed", self.seed),
            ("responseCode", self.response_code),
            ("backOffMilliseconds", self.back_off_ms),
            ("httpStatus", self.http_status),
            ("retryAfterSeconds", self.retry_after_s),
            ("latencyMs", self.latency_ms or None),
            ("jitterMs", self.jitter_ms or None),
            ("hang", self.hang or None),
            ("drop", self.drop or None),
        ):
            if value is not None:
                out[key] = value
        return out


def _int(spec: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"{key} must be an integer from {low} to {high}")
    return value


def parse_rule(rule_id: int, spec: Any) -> Rule:
    """Check a control-API rule and build it; ValueError says what is wrong."""
    if not isinstance(spec, dict):
        raise ValueError("a fault rule is a JSON object")
    known = {
        "operation",
        "mailbox",
        "count",
        "probability",
        "seed",
        "responseCode",
        "backOffMilliseconds",
        "httpStatus",
        "latencyMs",
        "jitterMs",
        "hang",
        "drop",
        "hangMs",
        "retryAfterSeconds",
    }
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"unknown fields: {', '.join(sorted(unknown))}")
    effects = [k for k in ("responseCode", "httpStatus", "hang", "drop") if spec.get(k)]
    if len(effects) > 1:
        raise ValueError("a rule has one effect: responseCode, httpStatus, hang or drop (latencyMs may join any)")
    if not effects and not spec.get("latencyMs"):
        raise ValueError("a rule needs an effect: responseCode, httpStatus, latencyMs, hang or drop")
    if spec.get("count") is not None and spec.get("probability") is not None:
        raise ValueError("count and probability exclude each other")
    for key in ("hang", "drop"):
        # A string such as "false" is truthy and would silently turn the effect on.
        if spec.get(key) is not None and not isinstance(spec[key], bool):
            raise ValueError(f"{key} must be true or false")
    probability = spec.get("probability")
    if probability is not None and (
        isinstance(probability, bool) or not isinstance(probability, int | float) or not 0 <= probability <= 1
    ):
        raise ValueError("probability must be a number from 0 to 1")
    code = spec.get("responseCode")
    graph = isinstance(spec.get("operation"), str) and spec["operation"].startswith("graph.")
    if code is not None and (
        not isinstance(code, str) or not (code.startswith("Error") or (graph and code.isidentifier()))
    ):
        raise ValueError(
            "responseCode must be an EWS error code such as ErrorServerBusy (a graph.* rule may use any Graph code)"
        )
    status = _int(spec, "httpStatus", 100, 599)
    if status is not None and status not in HTTP_STATUSES:
        raise ValueError(f"httpStatus must be one of {HTTP_STATUSES}")
    for key in ("operation", "mailbox"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise ValueError(f"{key} must be a string")
    seed = _int(spec, "seed", -(2**63), 2**63)
    return Rule(
        id=rule_id,
        operation=spec.get("operation"),
        mailbox=(spec.get("mailbox") or "").lower() or None,
        count=_int(spec, "count", 1, 10**9),
        probability=float(probability) if probability is not None else None,
        seed=seed,
        response_code=code,
        back_off_ms=_int(spec, "backOffMilliseconds", 0, 86_400_000),
        http_status=status,
        latency_ms=_int(spec, "latencyMs", 0, 600_000) or 0,
        jitter_ms=_int(spec, "jitterMs", 0, 600_000) or 0,
        hang=bool(spec.get("hang")),
        drop=bool(spec.get("drop")),
        hang_ms=_int(spec, "hangMs", 1, 3_600_000) or 300_000,
        retry_after_s=_int(spec, "retryAfterSeconds", 0, 86_400),
        rng=random.Random(seed),
    )


class Faults:
    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self._next = 1

    def add(self, spec: Any) -> Rule:
        rule = parse_rule(self._next, spec)
        self._next += 1
        self.rules.append(rule)
        return rule

    def clear(self) -> None:
        self.rules.clear()

    def fire(self, operation: str, mailboxes: list[str]) -> list[Rule]:
        """The rules that apply to this request, consuming counts; at most one effect rule, any latency rules."""
        fired: list[Rule] = []
        effect_taken = False
        for rule in list(self.rules):
            if not rule.matches(operation, mailboxes):
                continue
            if not rule.is_latency_only and effect_taken:
                continue
            if rule.probability is not None and rule.rng.random() >= rule.probability:
                continue
            if rule.count is not None:
                rule.count -= 1
                if rule.count <= 0:
                    self.rules.remove(rule)
            fired.append(rule)
            effect_taken = effect_taken or not rule.is_latency_only
        return fired

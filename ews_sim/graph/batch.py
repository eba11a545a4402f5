"""JSON batching: ``POST /v1.0/$batch`` with at most 20 requests, each answered with its own status, headers and body.

Every sub-request goes through the same pipeline as a request of its own (authentication with
the batch's token, fault rules, the mailbox concurrency limit, the request log, strict checks).
They run one after another, in the order given; ``dependsOn`` is honoured: a request whose
dependency failed is answered ``424 Failed Dependency`` without running, as Graph does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from multidict import CIMultiDict

from ews_sim.graph.errors import GraphError, bad_request, error_body
from ews_sim.graph.routes import GraphRequest, GraphResponse

MAX_REQUESTS = 20
_KEEP_HEADERS = ("Content-Type", "Retry-After", "ETag", "Location", "Preference-Applied")


def _sub_requests(body: Any) -> list[dict[str, Any]]:
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise bad_request("Invalid batch payload format.")
    if len(requests) > MAX_REQUESTS:
        raise bad_request(f"The number of requests in the batch ({len(requests)}) exceeds the limit of {MAX_REQUESTS}.")
    seen: set[str] = set()
    for entry in requests:
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("id", "method", "url")):
            raise bad_request("Invalid batch payload format: every request needs id, method and url strings.")
        key = entry["id"].lower()
        if key in seen:
            raise bad_request(f"Batch request ids must be unique; '{entry['id']}' is repeated.")
        depends = entry.get("dependsOn", [])
        if not isinstance(depends, list) or not all(isinstance(d, str) and d.lower() in seen for d in depends):
            raise bad_request(f"Request '{entry['id']}' depends on a request that does not come before it.")
        headers = entry.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise bad_request(f"The headers of request '{entry['id']}' must be an object of strings.")
        if entry.get("body") is not None and not any(k.lower() == "content-type" for k in headers):
            raise bad_request(f"Request '{entry['id']}' has a body but no Content-Type header.")
        seen.add(key)
    return requests


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    path = parts.path
    if parts.scheme:  # an absolute https://graph.microsoft.com/v1.0/... URL
        path = path.split("/v1.0", 1)[1] if "/v1.0" in path else path
    elif path.startswith("/v1.0/"):
        path = path[len("/v1.0") :]
    if not path.startswith("/"):
        path = "/" + path
    query: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        query.setdefault(key, value)
    return path, query


async def run_batch(req: GraphRequest) -> GraphResponse:
    requests = _sub_requests(req.body)
    outcome: dict[str, int] = {}
    responses = []
    for entry in requests:
        failed = [d for d in entry.get("dependsOn", []) if outcome.get(d.lower(), 200) >= 400]
        if failed:
            result = GraphResponse(
                424,
                error_body("FailedDependency", f"The dependent request '{failed[0]}' failed.", entry["id"]),
                {"Content-Type": "application/json"},
            )
        else:
            path, query = _split_url(entry["url"])
            headers: CIMultiDict[str] = CIMultiDict(entry.get("headers", {}))
            headers["Authorization"] = req.headers.get("Authorization", "")
            try:
                if path.rstrip("/").lower() == "/$batch":
                    raise bad_request("A batch request cannot contain another batch request.")
                result = await req.front.handle(
                    entry["method"].upper(),
                    path,
                    query,
                    headers,
                    entry.get("body"),
                    req.base,
                    req.http_request,
                    parsed=True,
                )
            except GraphError as exc:
                result = GraphResponse(exc.status, error_body(exc.code, exc.message, entry["id"]), code=exc.code)
        outcome[entry["id"].lower()] = result.status
        answer: dict[str, Any] = {
            "id": entry["id"],
            "status": result.status,
            "headers": {k: v for k, v in result.headers.items() if k in _KEEP_HEADERS},
        }
        if result.body is not None:
            answer["body"] = result.body
        responses.append(answer)
    return GraphResponse(200, {"responses": responses})

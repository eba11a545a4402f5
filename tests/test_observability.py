"""Sentry events: tagged with tenant and correlation id, and carrying no bodies, headers or tokens.

A real sentry-sdk sends to a DSN served by a local HTTP server, which keeps what it receives.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import sentry_sdk
from pydantic import SecretStr

from downsync import observability
from downsync.settings import Settings


class _Collector(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        _Collector.received.append(raw)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def sentry_server() -> Iterator[str]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/1"
    server.shutdown()
    sentry_sdk.init()  # switch the SDK off again for the other tests


def _events() -> list[dict[str, Any]]:
    events = []
    for envelope in _Collector.received:
        for line in envelope.split(b"\n"):
            try:
                item = json.loads(line)
            except ValueError:
                continue
            if isinstance(item, dict) and "event_id" in item and ("exception" in item or "logentry" in item):
                events.append(item)
    return events


def test_no_dsn_no_sentry() -> None:
    assert observability.init_sentry(Settings(sentry_dsn=None), "api") is False


def test_events_are_tagged_and_scrubbed(sentry_server: str) -> None:
    assert observability.init_sentry(Settings(sentry_dsn=SecretStr(sentry_server)), "worker") is True
    observability.tenant_name.set("contoso")
    observability.correlation_id.set("corr-123")
    with sentry_sdk.new_scope() as scope:
        scope.set_context("request", {})
        scope.add_event_processor(
            lambda event, hint: {
                **event,
                "request": {
                    "url": "http://x/api",
                    "data": {"body": "secret meeting notes"},
                    "headers": {"Authorization": "Bearer dsk_secret"},
                    "cookies": "a=b",
                },
            }
        )
        try:
            raise RuntimeError("converging failed")
        except RuntimeError:
            sentry_sdk.capture_exception()
    logging.getLogger("downsync.test").error("an error log line")
    sentry_sdk.flush(timeout=5)
    events = _events()
    assert len(events) == 2
    for event in events:
        assert event["tags"]["tenant"] == "contoso" and event["tags"]["correlation_id"] == "corr-123"
        for exception in event.get("exception", {}).get("values", []):
            for frame in exception.get("stacktrace", {}).get("frames", []):
                # Source lines of this very test mention the secrets; they are code, not data.
                for key in ("pre_context", "context_line", "post_context"):
                    frame.pop(key, None)
        text = json.dumps(event)
        assert "secret meeting notes" not in text, text
        assert "dsk_secret" not in text and "a=b" not in text
    assert events[0]["request"] == {"url": "http://x/api"}

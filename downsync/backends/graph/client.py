"""Graph over httpx: one connection pool per tenant, app-only tokens, Graph's failures in the core's kinds, and at
most four requests in flight per mailbox (Exchange Online's limit; a fifth would be answered 429)."""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx

from downsync.backends.graph import GraphOptions
from downsync.backends.graph.auth import TokenSource
from downsync.core.errors import (
    MAILBOX_NOT_FOUND,
    TIMEOUT,
    Conflict,
    GatewayError,
    PermanentError,
    TransientError,
    UnclearOutcome,
)

MAILBOX_CONCURRENCY = 4
UTC_PREFERENCE = 'outlook.timezone="UTC"'


def ca_file(pem: str | None) -> str | None:
    """The tenant's CA bundle as a file (requests, under msal, takes only paths), one per distinct bundle."""
    if not pem:
        return None
    path = Path(tempfile.gettempdir()) / f"downsync-ca-{hashlib.sha256(pem.encode()).hexdigest()[:16]}.pem"
    if not path.exists():
        # Written aside, then renamed into place: a gateway built at the same time in another thread or process
        # must never load a half-written (or empty) bundle, which fails its TLS handshakes.
        partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        partial.write_text(pem)
        os.replace(partial, path)
    return str(path)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None


def graph_error(response: httpx.Response, write: bool) -> GatewayError:
    """Graph's ``{"error": {"code", "message"}}`` as the core's error kind, with a message that says what to fix."""
    try:
        error = json.loads(response.content).get("error", {})
    except (ValueError, AttributeError):
        error = {}
    code = str(error.get("code") or f"HTTP{response.status_code}")
    message = str(error.get("message") or response.reason_phrase)[:400]
    status = response.status_code
    if status == 429 or (status in (503, 504) and _retry_after(response) is not None):
        return TransientError(code, message, back_off=_retry_after(response), throttled=True)
    if status in (502, 503, 504):
        return TransientError(code, message)
    if status >= 500:
        return UnclearOutcome(code, message) if write else TransientError(code, message)
    if status == 412 or code in ("ErrorIrresolvableConflict", "ErrorItemNotFound"):
        return Conflict(code, message)
    if code == "ErrorInvalidUser":
        return PermanentError(MAILBOX_NOT_FOUND, message)
    if code == "MailboxNotEnabledForRESTAPI":
        return PermanentError(code, f"{message} Graph cannot reach mailboxes hosted on-premises: use an EWS tenant.")
    if status == 403:
        if "AccessPolicy" in message:
            hint = "the mailbox is outside the app's application access policy (New-ApplicationAccessPolicy)"
        else:
            hint = "the app lacks the Calendars.ReadWrite application permission or its admin consent"
        return PermanentError("ErrorAccessDenied", f"{hint}: {message}")
    return PermanentError(code, message)


class GraphClient:
    def __init__(self, options: GraphOptions, timeout: float, connections: int = 64) -> None:
        self.base = options.graph_url
        bundle = ca_file(options.ca_bundle)
        self.tokens = TokenSource(options, bundle, timeout)
        self.http = httpx.Client(
            timeout=timeout,
            verify=ssl.create_default_context(cafile=bundle) if bundle else True,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        )
        self._slots: dict[str, threading.BoundedSemaphore] = {}
        self._slots_lock = threading.Lock()

    def _slot(self, mailbox: str) -> threading.BoundedSemaphore:
        with self._slots_lock:
            return self._slots.setdefault(mailbox.lower(), threading.BoundedSemaphore(MAILBOX_CONCURRENCY))

    def url(self, path: str) -> str:
        return path if path.startswith("https://") else f"{self.base}{path}"

    def call(
        self,
        method: str,
        path: str,
        mailbox: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        write: bool = False,
    ) -> Any:
        """One Graph request; returns the decoded body (None when empty) or raises the core's error."""
        fresh = False
        for _ in range(2):
            sent = {"Authorization": f"Bearer {self.tokens.token(fresh)}", "Prefer": UTC_PREFERENCE, **(headers or {})}
            content = json.dumps(body).encode() if body is not None else None
            if content is not None:
                sent["Content-Type"] = "application/json"
            with self._slot(mailbox):
                try:
                    response = self.http.request(method, self.url(path), params=params, content=content, headers=sent)
                except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                    raise TransientError("ErrorConnectionFailed", f"Graph could not be reached: {exc}") from exc
                except httpx.TimeoutException as exc:
                    kind = UnclearOutcome if write else TransientError
                    raise kind(TIMEOUT, f"no answer from Graph in time: {exc}") from exc
                except httpx.TransportError as exc:
                    kind = UnclearOutcome if write else TransientError
                    raise kind("ErrorConnectionFailed", f"the connection to Graph failed: {exc}") from exc
            if response.status_code == 401 and not fresh:
                fresh = True  # the token may have been revoked or expired early: one fresh one, once
                continue
            if response.status_code == 401:
                raise PermanentError("ErrorAccessDenied", f"Graph refused the app's token: {response.text[:300]}")
            if response.status_code >= 300:
                raise graph_error(response, write)
            return json.loads(response.content) if response.content else None
        raise AssertionError("unreachable")

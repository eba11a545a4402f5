"""The Graph front door's request pipeline, shared by every Graph request and every ``$batch`` sub-request.

In order: route -> bearer token (401) -> the mailbox concurrency limit (429 ApplicationThrottled)
-> fault rules (before any side effect, as throttling is) -> strict request check (400
RequestBodyRead) -> consent (403) -> the user: exists (404 ErrorInvalidUser), hosted online (404
MailboxNotEnabledForRESTAPI), allowed by the app's access policy (403) -> the handler. Every
request is logged (``GET /_sim/log``) with its operation, mailbox, HTTP status and Graph code, and
in strict mode every response body is checked against the CSDL.

The token endpoint and OpenID discovery live here too, logged as ``graph.token``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ews_sim.graph import auth, routes
from ews_sim.graph.errors import (
    CODE_STATUS,
    RAOP_DENIED,
    EntraError,
    GraphError,
    check_error_shape,
    error_body,
    message_for,
)
from ews_sim.graph.routes import GraphRequest, GraphResponse, Route
from ews_sim.server import LogEntry

if TYPE_CHECKING:
    from ews_sim.faults import Rule
    from ews_sim.server import Simulator

ODATA_JSON = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
_QUERY_OPTIONS = {"filter", "select", "top", "skip", "expand", "orderby", "count", "search"}
_INJECTED = {
    401: ("InvalidAuthenticationToken", "Access token validation failure."),
    429: ("TooManyRequests", "Too many requests. Retry after the time given in the Retry-After header."),
    500: ("ErrorInternalServerError", "An internal server error occurred. The operation failed."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Retry the request after a delay."),
    504: ("UnknownError", "Gateway Timeout: the mailbox server did not answer in time."),
}
MAILBOX_CONCURRENCY_MESSAGE = "Application is over its MailboxConcurrency limit."


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _query(raw: Mapping[str, str]) -> dict[str, str]:
    """Query options with the ``$`` Graph lets clients leave out."""
    out: dict[str, str] = {}
    for key, value in raw.items():
        name = key.lower()
        if name.lstrip("$") in _QUERY_OPTIONS:
            name = "$" + name.lstrip("$")
            out.setdefault(name, value)
        else:
            out.setdefault(key, value)
    return out


class GraphFrontDoor:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/{tenant}/v2.0/.well-known/openid-configuration", self.discovery),
            web.post("/{tenant}/oauth2/v2.0/token", self.token),
            web.get("/{tenant}/discovery/v2.0/keys", self.keys),
            web.route("*", "/v1.0/{tail:.*}", self.graph),
        ]

    # --- Entra ------------------------------------------------------------------------------------------

    async def discovery(self, request: web.Request) -> web.Response:
        name = request.match_info["tenant"]
        tid = self.sim.graph.tenant(name)
        if tid is None:
            error = auth.unknown_tenant(name)
            body = error.body() | {"error": "invalid_tenant"}
            return web.json_response(body, status=400)
        return web.json_response(auth.openid_configuration(_base(request), tid))

    async def keys(self, request: web.Request) -> web.Response:
        # Access tokens are signed with a symmetric key private to the simulator: nothing to publish.
        return web.json_response({"keys": []})

    async def token(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        entry = self._entry("graph.token", None)
        entry.account = form.get("client_id", "")
        try:
            for rule in self.sim.faults.fire("graph.token", []):
                injected = await self._inject(rule, entry, request, token=True)
                if injected is not None:
                    return injected
            app, body = auth.token_response(
                self.sim.graph,
                request.match_info["tenant"],
                form,
                request.headers.get("Authorization"),
                _base(request),
            )
            entry.account = app.client_id
            return web.json_response(body, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})
        except EntraError as exc:
            entry.http_status, entry.response_code, entry.codes = exc.status, exc.error, [f"AADSTS{exc.aadsts}"]
            return web.json_response(exc.body(), status=exc.status)
        finally:
            entry.duration_ms = (time.perf_counter() - started) * 1000
            self.sim.log.append(entry)

    # --- Graph ------------------------------------------------------------------------------------------

    async def graph(self, request: web.Request) -> web.StreamResponse:
        data = await request.read()
        path = request.rel_url.path[len("/v1.0") :] or "/"
        result = await self.handle(
            request.method,
            path,
            _query(request.rel_url.query),
            request.headers,
            data,
            _base(request),
            request,
        )
        return self._web(result)

    @staticmethod
    def _web(result: GraphResponse) -> web.Response:
        if result.body is None:
            return web.Response(status=result.status, headers=result.headers)
        headers = {"Content-Type": ODATA_JSON if result.status < 400 else "application/json", **result.headers}
        return web.Response(status=result.status, body=json.dumps(result.body).encode(), headers=headers)

    def _entry(self, operation: str, mailbox: str | None) -> LogEntry:
        self.sim._seq += 1
        return LogEntry(seq=self.sim._seq, time=time.time(), operation=operation, account="", mailbox=mailbox)

    async def handle(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        headers: Mapping[str, str],
        body: Any,
        base: str,
        http_request: web.Request | None,
        parsed: bool = False,
    ) -> GraphResponse:
        """Answer one Graph request (``body`` is raw bytes, or already-parsed JSON for a batch sub-request)."""
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        client_request_id = headers.get("client-request-id") or request_id
        entry = self._entry("graph.unknown", None)
        counted: str | None = None
        route: Route | None = None
        try:
            try:
                route, params = routes.match(method.upper(), path)
                entry.operation = route.operation
                # Any address of a mailbox names it; the rest of the pipeline sees its primary address.
                mailbox = self.sim.org.primary(params["user"]) if "user" in params else None
                entry.mailbox = mailbox
                caller = auth.authenticate(self.sim.graph, headers.get("Authorization"))
                entry.account = caller.app.client_id
                payload = body if parsed else self._parse(body)
                req = GraphRequest(
                    front=self,
                    method=method.upper(),
                    path=path,
                    query=query,
                    headers=headers,
                    body=payload,
                    base=base,
                    params=params,
                    caller=caller,
                    mailbox=mailbox,
                    http_request=http_request,
                )
                if mailbox is not None and route.per_mailbox:
                    counted = mailbox
                    self.sim.graph.inflight[mailbox] += 1
                    if self.sim.graph.inflight[mailbox] > self.sim.graph.mailbox_concurrency:
                        raise GraphError(429, "ApplicationThrottled", MAILBOX_CONCURRENCY_MESSAGE, {"Retry-After": "1"})
                targets = [mailbox] if mailbox else []
                if route.operation == "graph.getSchedule":
                    schedules = self._schedules(payload)
                    targets = list(dict.fromkeys(targets + schedules + [self.sim.org.primary(a) for a in schedules]))
                for rule in self.sim.faults.fire(route.operation, targets):
                    injected = await self._inject(rule, entry, http_request, req=req)
                    if injected is not None:
                        raise injected
                self._check_request(route, payload)
                if route.roles and not set(route.roles) & set(caller.roles):
                    raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
                if mailbox is not None:
                    self._check_user(params["user"], mailbox, caller, directory=not route.per_mailbox)
                outcome = route.handler(req)
                result = await outcome if inspect.isawaitable(outcome) else outcome
            except GraphError as exc:
                result = GraphResponse(
                    exc.status,
                    error_body(exc.code, exc.message, request_id, client_request_id),
                    dict(exc.headers),
                    None,
                )
                result.code = exc.code
            result.headers.setdefault("request-id", request_id)
            result.headers.setdefault("client-request-id", client_request_id)
            entry.http_status, entry.response_code = result.status, result.code
            entry.codes = [result.code]
            self._check_response(entry, result)
            return result
        finally:
            if counted is not None:
                self.sim.graph.inflight[counted] -= 1
            entry.duration_ms = (time.perf_counter() - started) * 1000
            self.sim.log.append(entry)

    @staticmethod
    def _parse(data: bytes) -> Any:
        if not data or not data.strip():
            return None
        try:
            return json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise GraphError(
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of "
                f"valid JSON format. ({exc})",
            ) from exc

    @staticmethod
    def _schedules(payload: Any) -> list[str]:
        if not isinstance(payload, dict):
            return []
        found = next((v for k, v in payload.items() if k.lower() == "schedules"), None)
        return [s.strip().lower() for s in found if isinstance(s, str)] if isinstance(found, list) else []

    def _check_user(self, raw: str, mailbox: str, caller: auth.Caller, directory: bool = False) -> None:
        if not self.sim.org.is_mailbox(mailbox):
            if directory:
                raise GraphError(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{raw}' does not exist or one of its queried reference-property objects are not "
                    "present.",
                )
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{raw}' is invalid.")
        if directory:
            return  # the directory is not the mailbox: no access policy, hosted anywhere
        addresses = self.sim.org.addresses(mailbox)
        if any(a in self.sim.graph.on_premises for a in addresses):
            raise GraphError(404, "MailboxNotEnabledForRESTAPI")
        if not any(caller.app.may_access(a) for a in addresses):
            raise GraphError(403, "ErrorAccessDenied", RAOP_DENIED)

    # --- strict mode --------------------------------------------------------------------------------------

    def _check_request(self, route: Route, payload: Any) -> None:
        schema = self.sim.graph_schema
        if schema is None or route.body is None or payload is None:
            return
        if route.body[0] == "type":
            problem = schema.check_request(route.body[1], payload)
        else:
            problem = schema.check_parameters(route.body[1], route.body[2], payload)
        if problem is not None:
            raise GraphError(400, "RequestBodyRead", problem.message)

    def _check_response(self, entry: LogEntry, result: GraphResponse) -> None:
        schema = self.sim.graph_schema
        if schema is None or result.body is None:
            return
        if result.status >= 400:
            problem = check_error_shape(result.body)
            problems = [problem] if problem else []
        elif result.odata_type is not None:
            problems = [str(p) for p in schema.check_response(result.odata_type, result.body)]
        else:
            return
        for problem in problems:
            self.sim.schema_errors.append({"seq": entry.seq, "operation": entry.operation, "problem": problem})

    # --- fault injection ----------------------------------------------------------------------------------

    async def _inject(
        self,
        rule: Rule,
        entry: LogEntry,
        http_request: web.Request | None,
        req: GraphRequest | None = None,
        token: bool = False,
    ) -> Any:
        """Apply one fired rule: sleep for latency, hang, drop, or return the error to answer with (a GraphError
        for Graph, a web.Response for the token endpoint); None lets the request go on."""
        if rule.latency_ms:
            jitter = rule.rng.uniform(-rule.jitter_ms, rule.jitter_ms) if rule.jitter_ms else 0.0
            await asyncio.sleep(max(0.0, rule.latency_ms + jitter) / 1000)
        transport = http_request.transport if http_request is not None else None
        if rule.hang:
            deadline = time.monotonic() + rule.hang_ms / 1000
            while time.monotonic() < deadline and transport is not None and not transport.is_closing():
                await asyncio.sleep(0.02)
            status = 504
        elif rule.drop:
            entry.response_code, entry.http_status = "Dropped", 0
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError
        elif rule.http_status:
            status = rule.http_status
        elif rule.response_code:
            code = rule.response_code
            if (
                req is not None
                and rule.mailbox
                and rule.mailbox != req.mailbox
                and entry.operation == "graph.getSchedule"
            ):
                req.schedule_faults[rule.mailbox] = code  # that schedule fails, the others are answered
                return None
            status = CODE_STATUS.get(code, 400)
            if token:
                return self._entra_fault(entry, status, code, rule)
            return GraphError(status, code, message_for(code), self._retry_after(rule))
        else:
            return None
        if token:
            return self._entra_fault(entry, status, "temporarily_unavailable", rule)
        code, message = _INJECTED.get(status, ("UnknownError", f"HTTP {status}"))
        headers = self._retry_after(rule)
        if status == 401:
            headers["WWW-Authenticate"] = auth.WWW_AUTHENTICATE
        return GraphError(status, code, message, headers)

    @staticmethod
    def _retry_after(rule: Rule) -> dict[str, str]:
        return {"Retry-After": str(rule.retry_after_s)} if rule.retry_after_s is not None else {}

    def _entra_fault(self, entry: LogEntry, status: int, error: str, rule: Rule) -> web.Response:
        aadsts = 90055 if status == 429 else 90033  # throttled / a transient error
        body = EntraError(status, error, aadsts, "The service is busy; try again later.").body()
        entry.http_status, entry.response_code = status, error
        return web.json_response(body, status=status, headers=self._retry_after(rule))

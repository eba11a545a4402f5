"""The simulator's HTTP server: authentication, impersonation, fault injection and dispatch."""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from lxml import etree

from ews_sim import responses, timezones, versions
from ews_sim.config import OrgConfig
from ews_sim.faults import Faults, Rule
from ews_sim.graph.directory import Directory
from ews_sim.graph.schema import GraphSchema
from ews_sim.ops import OPERATIONS, Context, SoapFault
from ews_sim.schema import EwsSchema
from ews_sim.store import Organisation, ServiceAccount
from ews_sim.xmlutil import SOAP, BadRequest, child_text, local, parse, tq

EWS_PATHS = ("/EWS/Exchange.asmx", "/ews/exchange.asmx")
_CODE = re.compile(r"<m:ResponseCode>(\w+)</m:ResponseCode>|<e:ResponseCode[^>]*>(\w+)</e:ResponseCode>")
# Exchange's identity and throttling errors arrive as SOAP faults, whatever the operation.
_IIS_500 = (
    b"<html><head><title>Runtime Error</title></head><body><h1>Server Error in '/EWS' Application.</h1>"
    b"<h2><i>Runtime Error</i></h2></body></html>"
)


@dataclass
class LogEntry:
    seq: int
    time: float
    operation: str
    account: str
    mailbox: str | None
    response_code: str = "NoError"
    http_status: int = 200
    duration_ms: float = 0.0
    codes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "operation": self.operation,
            "account": self.account,
            "mailbox": self.mailbox,
            "responseCode": self.response_code,
            "responseCodes": self.codes,
            "httpStatus": self.http_status,
            "durationMs": round(self.duration_ms, 2),
        }


class Simulator:
    def __init__(
        self,
        config: OrgConfig,
        build: str = "15.1.2507.6",
        schema: EwsSchema | None = None,
        capture_dir: Path | None = None,
        graph_schema: GraphSchema | None = None,
    ) -> None:
        self.config = config
        self.org = Organisation()
        config.apply(self.org)
        self.build = responses.Build.parse(build)
        self.schema = schema
        self.graph_schema = graph_schema  # strict Graph: requests and responses checked against the CSDL
        self.graph = Directory(config)  # apps, access policies and limits of the Graph front door
        self.capture_dir = capture_dir
        self.faults = Faults()
        self.log: collections.deque[LogEntry] = collections.deque(maxlen=20_000)
        self.schema_errors: list[dict[str, Any]] = []
        self.inflight: collections.Counter[str] = collections.Counter()
        self._seq = 0

    @property
    def strict(self) -> bool:
        return self.schema is not None

    def reset(self) -> None:
        self.org = Organisation()
        self.config.apply(self.org)
        self.graph.reset(self.config)
        self.faults.clear()
        self.log.clear()
        self.schema_errors.clear()

    # --- HTTP --------------------------------------------------------------------------------------

    def _authenticate(self, request: web.Request) -> ServiceAccount | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            username, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        account = self.org.accounts.get(username.lower())
        if account is None or account.password != password:
            return None
        return account

    @staticmethod
    def _unauthorized() -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="ews-sim"'}, text="401 Unauthorized")

    def _reply(self, body: str, status: int = 200) -> web.Response:
        return web.Response(
            body=responses.envelope(body, self.build), status=status, content_type="text/xml", charset="utf-8"
        )

    async def ews(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        account = self._authenticate(request)
        if account is None:
            return self._unauthorized()
        data = await request.read()
        self._seq += 1
        entry = LogEntry(seq=self._seq, time=time.time(), operation="", account=account.username, mailbox=None)
        self.inflight[account.username] += 1
        try:
            reply = await self._handle(request, account, data, entry)
        finally:
            self.inflight[account.username] -= 1
            entry.duration_ms = (time.perf_counter() - started) * 1000
            self.log.append(entry)
        # An injected non-SOAP answer (the IIS error page) is meant to break the schema; only SOAP is checked.
        if (
            isinstance(reply, web.Response)
            and reply.body is not None
            and reply.content_type == "text/xml"
            and entry.http_status in (200, 500)
        ):
            self._record_codes(entry, reply)
            if self.capture_dir is not None:
                self._capture(entry, data, bytes(reply.body))
        return reply

    def _record_codes(self, entry: LogEntry, reply: web.Response) -> None:
        text = bytes(reply.body).decode("utf-8", "replace")
        codes = [a or b for a, b in _CODE.findall(text)]
        entry.codes = codes
        entry.response_code = next((c for c in codes if c != "NoError"), codes[0] if codes else entry.response_code)
        if self.schema is not None and reply.status in (200, 500):
            self._validate_response(entry, text)

    def _validate_response(self, entry: LogEntry, text: str) -> None:
        assert self.schema is not None
        try:
            problem = self.schema.validate_envelope(etree.fromstring(text.encode()))
        except etree.XMLSyntaxError as exc:
            problem = exc  # type: ignore[assignment]
        if problem is not None:
            self.schema_errors.append({"seq": entry.seq, "operation": entry.operation, "problem": str(problem)})

    def _capture(self, entry: LogEntry, request_body: bytes, response_body: bytes) -> None:
        assert self.capture_dir is not None
        self.capture_dir.mkdir(parents=True, exist_ok=True)
        stem = self.capture_dir / f"{entry.seq:05d}-{entry.operation or 'unknown'}"
        stem.with_suffix(".request.xml").write_bytes(request_body)
        stem.with_suffix(".response.xml").write_bytes(response_body)

    async def _handle(self, request: web.Request, account: ServiceAccount, data: bytes, entry: LogEntry) -> Any:
        try:
            root = parse(data)
        except BadRequest as exc:
            entry.operation, entry.http_status = "Invalid", 500
            return self._reply(
                responses.fault("ErrorSchemaValidation", f"The request failed schema validation: {exc}"), 500
            )
        header = root.find(f"{{{SOAP}}}Header")
        body = root.find(f"{{{SOAP}}}Body")
        payload = next((c for c in body if isinstance(c.tag, str)), None) if body is not None else None
        if payload is None:
            entry.operation, entry.http_status = "Invalid", 500
            return self._reply(responses.fault("ErrorSchemaValidation", "The SOAP request has no body element."), 500)
        name = local(payload)
        entry.operation = name[: -len("Request")] if name.endswith("Request") else name
        written = _impersonated(header)
        # An alias acts as its mailbox: logs, fault rules and calendars see the primary address.
        mailbox = self.org.primary(written) if written else None
        entry.mailbox = mailbox
        operation = OPERATIONS.get(entry.operation)
        targets = [mailbox] if mailbox else []
        if entry.operation == "GetUserAvailability" and operation is not None:
            asked = [a.lower() for a in operation._addresses(payload)]  # type: ignore[attr-defined]
            targets = list(dict.fromkeys(asked + [self.org.primary(a) for a in asked]))

        ctx = Context(org=self.org, account=account, mailbox=mailbox, zone=None)
        for rule in self.faults.fire(entry.operation, targets):
            reply = await self._inject(request, rule, entry, operation, payload, ctx)
            if reply is not None:
                return reply
        if self.inflight[account.username] > self.org.max_concurrency:
            entry.http_status = 500
            return self._reply(responses.fault("ErrorServerBusy"), 500)
        if not versions.served(versions.requested(header), self.build):
            entry.http_status = 500
            return self._reply(responses.fault("ErrorInvalidServerVersion", versions.INVALID_TEXT), 500)
        if self.schema is not None:
            problem = self.schema.validate_envelope(root)
            if problem is not None:
                entry.http_status = 500
                return self._reply(_schema_fault(problem), 500)
        try:
            if mailbox is not None:
                self._check_identity(account, mailbox, written or mailbox)
            if operation is None:
                raise SoapFault("ErrorInvalidRequest", f"The simulator does not implement {entry.operation}.")
            ctx.zone = _context_zone(header)
            ctx.zone_id = _context_zone_id(header) if ctx.zone is not None else None
            result = operation.run(ctx, payload)
        except SoapFault as exc:
            entry.http_status = 500
            return self._reply(exc.body(), 500)
        return self._reply(result)

    def _check_identity(self, account: ServiceAccount, mailbox: str, written: str) -> None:
        if not self.org.is_mailbox(mailbox):
            raise SoapFault("ErrorNonExistentMailbox", values={"SmtpAddress": written})
        if not self.org.may_impersonate(account, mailbox):
            raise SoapFault("ErrorImpersonateUserDenied", values={"SmtpAddress": written})

    async def _inject(
        self,
        request: web.Request,
        rule: Rule,
        entry: LogEntry,
        operation: Any,
        payload: etree._Element,
        ctx: Context,
    ) -> web.StreamResponse | None:
        if rule.latency_ms:
            jitter = rule.rng.uniform(-rule.jitter_ms, rule.jitter_ms) if rule.jitter_ms else 0.0
            await asyncio.sleep(max(0.0, rule.latency_ms + jitter) / 1000)
        if rule.hang:
            entry.response_code, entry.http_status = "Hang", 0
            deadline = time.monotonic() + rule.hang_ms / 1000
            transport = request.transport
            while time.monotonic() < deadline and transport is not None and not transport.is_closing():
                await asyncio.sleep(0.02)
            return self._reply(responses.fault("ErrorTimeoutExpired", "The request timed out."), 500)
        if rule.drop:
            entry.response_code, entry.http_status = "Dropped", 0
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError
        if rule.http_status:
            entry.http_status = rule.http_status
            entry.response_code = f"HTTP{rule.http_status}"
            if rule.http_status == 401:
                return self._unauthorized()
            if rule.http_status == 500:
                return web.Response(status=500, body=_IIS_500, content_type="text/html")
            headers = {"Retry-After": str(rule.retry_after_s)} if rule.retry_after_s is not None else None
            reason = {429: "Too Many Requests", 504: "Gateway Timeout"}.get(rule.http_status, "Service Unavailable")
            return web.Response(status=rule.http_status, text=reason, content_type="text/plain", headers=headers)
        code = rule.response_code
        if code is None:
            return None
        if code in responses.FAULT_CODES or operation is None:
            values = {"BackOffMilliseconds": str(rule.back_off_ms)} if rule.back_off_ms is not None else None
            if code in ("ErrorImpersonateUserDenied", "ErrorNonExistentMailbox") and ctx.mailbox:
                values = {"SmtpAddress": ctx.mailbox}
            entry.http_status = 500
            return self._reply(responses.fault(code, values=values), 500)
        if entry.operation == "GetUserAvailability" and rule.mailbox:
            # One mailbox of the batch fails; the others are answered.
            ctx.mailbox_faults[rule.mailbox] = code
            return None
        return self._reply(operation.error_messages(payload, code))


def _impersonated(header: etree._Element | None) -> str | None:
    if header is None:
        return None
    imp = header.find(tq("ExchangeImpersonation"))
    if imp is None:
        return None
    sid = imp.find(tq("ConnectingSID"))
    if sid is None:
        return None
    for name in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName"):
        value = child_text(sid, name)
        if value:
            return value.strip().lower()
    return None


def _context_zone(header: etree._Element | None) -> Any:
    if header is None:
        return None
    context = header.find(tq("TimeZoneContext"))
    definition = context.find(tq("TimeZoneDefinition")) if context is not None else None
    if definition is None:
        return None
    try:
        return timezones.zone(definition.get("Id", ""))
    except timezones.UnknownTimeZoneError as exc:
        raise SoapFault("ErrorTimeZone", f"The time zone {exc} is not known to the server.") from exc


def _context_zone_id(header: etree._Element | None) -> str | None:
    context = header.find(tq("TimeZoneContext")) if header is not None else None
    definition = context.find(tq("TimeZoneDefinition")) if context is not None else None
    return definition.get("Id") if definition is not None else None


def _schema_fault(problem: Any) -> str:
    extra = (
        f"<t:LineNumber>{problem.line}</t:LineNumber><t:LinePosition>{problem.column}</t:LinePosition>"
        f"<t:Violation>{responses.esc(problem.message)}</t:Violation>"
    )
    return responses.fault(
        "ErrorSchemaValidation", f"The request failed schema validation: {problem.message}", extra_xml=extra
    )

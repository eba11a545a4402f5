"""The control API under ``/_sim/``: JSON for tests, the demo and benchmarks."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ews_sim import meetings
from ews_sim.config import AppConfig, ConfigError, aliases_map, impersonate_list
from ews_sim.ops.create_item import new_uid
from ews_sim.store import Attendee, CalendarItem, ext_label, new_item_id
from ews_sim.xmlutil import fmt_dt, parse_dt

if TYPE_CHECKING:
    from ews_sim.server import Simulator

FREE_BUSY = ("Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData")
ANSWERS = ("Accept", "Decline", "Tentative")
# POST /_sim/limits: name -> (object holding it, attribute, smallest value).
LIMITS = {
    "maxConcurrency": ("org", "max_concurrency", 1),
    "graphMailboxConcurrency": ("graph", "mailbox_concurrency", 1),
    "graphScheduleMaxMailboxes": ("graph", "schedule_max", 1),
    "tokenLifetimeSeconds": ("graph", "token_lifetime", 0),
}


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"body is not JSON: {exc}"}), content_type="application/json"
        ) from exc


def item_json(item: CalendarItem) -> dict[str, Any]:
    def person(a: Attendee, required: bool) -> dict[str, Any]:
        return {"email": a.email, "isRequired": required, "response": a.response}

    return {
        "itemId": item.item_id,
        "changeKey": item.change_key,
        "uid": item.uid,
        "subject": item.subject,
        "body": item.body,
        "location": item.location,
        "start": fmt_dt(item.start),
        "end": fmt_dt(item.end),
        "isAllDay": item.is_all_day,
        "isMeeting": item.is_meeting,
        "isCancelled": item.is_cancelled,
        "freeBusy": item.free_busy,
        "myResponse": item.my_response,
        "organizer": item.organizer.email if item.organizer else None,
        "attendees": [person(a, True) for a in item.required] + [person(a, False) for a in item.optional],
        "extendedProperties": {ext_label(v.attrs): v.value for v in item.extended.values()},
    }


class Control:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/_sim/reset", self.reset),
            web.get("/_sim/mailboxes", self.list_mailboxes),
            web.post("/_sim/mailboxes", self.add_mailboxes),
            web.post("/_sim/accounts", self.add_account),
            web.get("/_sim/apps", self.list_apps),
            web.post("/_sim/apps", self.add_app),
            web.get("/_sim/mailboxes/{email}/calendar", self.calendar),
            web.post("/_sim/mailboxes/{email}/calendar", self.seed),
            web.post("/_sim/mailboxes/{email}/respond", self.respond),
            web.get("/_sim/faults", self.list_faults),
            web.post("/_sim/faults", self.add_fault),
            web.delete("/_sim/faults", self.clear_faults),
            web.get("/_sim/limits", self.get_limits),
            web.post("/_sim/limits", self.set_limits),
            web.get("/_sim/log", self.get_log),
            web.delete("/_sim/log", self.clear_log),
            web.get("/_sim/schema-errors", self.schema_errors),
            web.get("/_sim/messages", self.messages),
        ]

    async def reset(self, request: web.Request) -> web.Response:
        self.sim.reset()
        return web.json_response({"reset": True})

    async def list_mailboxes(self, request: web.Request) -> web.Response:
        org = self.sim.org
        aliases: dict[str, list[str]] = {}
        for alias, primary in sorted(org.aliases.items()):
            aliases.setdefault(primary, []).append(alias)
        return web.json_response(
            {"mailboxes": sorted(org.mailboxes), "domains": sorted(org.domains), "aliases": aliases}
        )

    async def add_mailboxes(self, request: web.Request) -> web.Response:
        body = await _json(request)
        usage = (
            'expected {"emails": ["a@example.com", ...], "aliases"?: {"a@example.com": ["other@example.com"]}, '
            '"onPremises"?: bool, "teamsDisabled"?: bool}'
        )
        if not isinstance(body, dict):
            return _bad(usage)
        emails = body.get("emails", [] if "aliases" in body else None)
        if not isinstance(emails, list) or not all(isinstance(e, str) and "@" in e for e in emails):
            return _bad(usage)
        flags = {k: body.get(k, False) for k in ("onPremises", "teamsDisabled")}
        if not all(isinstance(v, bool) for v in flags.values()):
            return _bad("onPremises and teamsDisabled must be true or false")
        try:
            aliases = aliases_map(body.get("aliases") or {}, "aliases")
        except ConfigError as exc:
            return _bad(str(exc))
        org = self.sim.org
        for primary, others in aliases.items():
            for other in others:
                if other in org.mailboxes or org.primary(other) not in (other, primary):
                    return _bad(f"aliases: {other} is already an address of {org.primary(other)}")
                if other in {e.strip().lower() for e in emails}:
                    return _bad(f"aliases: {other} is a mailbox of its own")
        org.add_mailboxes(emails)
        org.add_aliases(aliases)
        lowered = {e.strip().lower() for e in emails}
        if flags["onPremises"]:
            self.sim.graph.on_premises |= lowered
        if flags["teamsDisabled"]:
            self.sim.graph.teams_disabled |= lowered
        return web.json_response({"mailboxes": len(self.sim.org.mailboxes)})

    async def add_account(self, request: web.Request) -> web.Response:
        body = await _json(request)
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("username"), str)
            or not isinstance(body.get("password"), str)
        ):
            return _bad('expected {"username": ..., "password": ..., "impersonate": ["*" or addresses]}')
        impersonate = impersonate_list(body.get("impersonate", []))
        if impersonate is None:
            return _bad('impersonate must be a list of addresses or "*"')
        self.sim.org.add_account(body["username"], body["password"], impersonate)
        self.sim.org.add_mailboxes([body["username"]])
        return web.json_response({"username": body["username"]}, status=201)

    async def list_apps(self, request: web.Request) -> web.Response:
        return web.json_response([app.as_json() for app in self.sim.graph.apps.values()])

    async def add_app(self, request: web.Request) -> web.Response:
        """An Entra app registration, as in the config's ``apps`` (until the next reset)."""
        try:
            app = self.sim.graph.add_app(AppConfig.from_dict(await _json(request), "app"))
        except ConfigError as exc:
            return _bad(str(exc))
        return web.json_response(app.as_json(), status=201)

    def _mailbox(self, request: web.Request) -> str:
        email = self.sim.org.primary(request.match_info["email"])
        if not self.sim.org.is_mailbox(email):
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"{email} is not a mailbox of the organisation"}),
                content_type="application/json",
            )
        return email

    async def calendar(self, request: web.Request) -> web.Response:
        email = self._mailbox(request)
        found = sorted(self.sim.org.calendar(email).values(), key=lambda i: (i.start, i.created))
        return web.json_response([item_json(i) for i in found])

    async def seed(self, request: web.Request) -> web.Response:
        email = self._mailbox(request)
        body = await _json(request)
        if not isinstance(body, dict):
            return _bad("expected a JSON object")
        try:
            start, end = parse_dt(str(body["start"])), parse_dt(str(body["end"]))
        except (KeyError, ValueError) as exc:
            return _bad(f"start and end must be ISO 8601 date-times ({exc})")
        if end < start:
            return _bad("end must not be before start")
        free_busy = body.get("freeBusy", "Busy")
        if free_busy not in FREE_BUSY:
            return _bad(f"freeBusy must be one of {', '.join(FREE_BUSY)}")
        item = CalendarItem(
            item_id=new_item_id(),
            mailbox=email,
            uid=new_uid(),
            start=start,
            end=end,
            subject=str(body.get("subject", "")),
            body=str(body.get("body", "")),
            location=body.get("location"),
            free_busy=free_busy,
            is_all_day=bool(body.get("isAllDay", False)),
            organizer=Attendee(email=email, name=email, response="Organizer"),
        )
        self.sim.org.add_item(item)
        return web.json_response(item_json(item), status=201)

    async def respond(self, request: web.Request) -> web.Response:
        email = self._mailbox(request)
        body = await _json(request)
        if not isinstance(body, dict) or body.get("response") not in ANSWERS:
            return _bad(f'expected {{"itemId" or "organizerItemId": ..., "response": one of {", ".join(ANSWERS)}}}')
        calendar = self.sim.org.calendar(email)
        if body.get("itemId"):
            target = calendar.get(body["itemId"])
        else:
            target = next((i for i in calendar.values() if i.organizer_item_id == body.get("organizerItemId")), None)
        if target is None or target.is_organizer_copy:
            return _bad(f"{email} holds no meeting copy with that id", status=404)
        organizer_item = meetings.respond(self.sim.org, email, target, body["response"])
        return web.json_response(
            {
                "organizerItem": item_json(organizer_item) if organizer_item else None,
                "attendeeItem": item_json(target) if body["response"] != "Decline" else None,
            }
        )

    async def list_faults(self, request: web.Request) -> web.Response:
        return web.json_response([r.as_json() for r in self.sim.faults.rules])

    async def add_fault(self, request: web.Request) -> web.Response:
        try:
            rule = self.sim.faults.add(await _json(request))
        except ValueError as exc:
            return _bad(str(exc))
        return web.json_response(rule.as_json(), status=201)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.sim.faults.clear()
        return web.json_response({"cleared": True})

    def _limit_holder(self, name: str) -> Any:
        return self.sim.org if LIMITS[name][0] == "org" else self.sim.graph

    async def get_limits(self, request: web.Request) -> web.Response:
        return web.json_response(
            {name: getattr(self._limit_holder(name), attr) for name, (_, attr, _) in LIMITS.items()}
        )

    async def set_limits(self, request: web.Request) -> web.Response:
        """Any of maxConcurrency (EWS, per service account), graphMailboxConcurrency, graphScheduleMaxMailboxes and
        tokenLifetimeSeconds; all-or-nothing."""
        body = await _json(request)
        usage = "expected one or more of " + ", ".join(
            f'"{name}": an integer >= {low}' for name, (_, _, low) in LIMITS.items()
        )
        if not isinstance(body, dict) or not body or set(body) - set(LIMITS):
            return _bad(usage)
        for name, value in body.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < LIMITS[name][2]:
                return _bad(f"{name} must be an integer >= {LIMITS[name][2]} ({usage})")
        for name, value in body.items():
            setattr(self._limit_holder(name), LIMITS[name][1], value)
        return web.json_response(body)

    async def get_log(self, request: web.Request) -> web.Response:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return _bad("since must be an integer sequence number")
        return web.json_response([e.as_json() for e in self.sim.log if e.seq > since])

    async def clear_log(self, request: web.Request) -> web.Response:
        self.sim.log.clear()
        return web.json_response({"cleared": True})

    async def messages(self, request: web.Request) -> web.Response:
        to = request.query.get("to", "").strip().lower()
        return web.json_response(
            [
                {
                    "seq": m.seq,
                    "kind": m.kind,
                    "to": m.to,
                    "organizer": m.organizer,
                    "organizerItemId": m.organizer_item_id,
                    "uid": m.uid,
                    "subject": m.subject,
                    "start": fmt_dt(m.start),
                    "end": fmt_dt(m.end),
                    "sent": fmt_dt(m.sent),
                    "extendedProperties": m.extended,
                }
                for m in self.sim.org.messages
                if not to or m.to == to
            ]
        )

    async def schema_errors(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "strict": self.sim.strict,
                "graphStrict": self.sim.graph_schema is not None,
                "errors": self.sim.schema_errors,
            }
        )

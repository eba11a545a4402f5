"""Graph URLs (below ``/v1.0``) to operations: the handler, the fault-rule operation name, the permission needed
and the request body's CSDL type. Path segments match case-insensitively, as Graph's do."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ews_sim.graph.errors import GraphError, bad_request
from ews_sim.graph.json import View, preferences

if TYPE_CHECKING:
    from aiohttp import web

    from ews_sim.graph.auth import Caller
    from ews_sim.graph.directory import Directory
    from ews_sim.graph.schema import GraphSchema
    from ews_sim.graph.server import GraphFrontDoor
    from ews_sim.server import Simulator
    from ews_sim.store import Organisation

READ_ROLES = ("Calendars.Read", "Calendars.ReadWrite")
WRITE_ROLES = ("Calendars.ReadWrite",)
SCHEDULE_ROLES = ("Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite")
DIRECTORY_ROLES = ("User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All")

# Every operation name a fault rule may target (besides graph.token, the token endpoint).
OPERATIONS = (
    "graph.createEvent",
    "graph.listEvents",
    "graph.calendarView",
    "graph.listInstances",
    "graph.getEvent",
    "graph.updateEvent",
    "graph.deleteEvent",
    "graph.cancelEvent",
    "graph.acceptEvent",
    "graph.tentativelyAcceptEvent",
    "graph.declineEvent",
    "graph.getCalendar",
    "graph.getUser",
    "graph.getSchedule",
    "graph.batch",
    "graph.token",
)


@dataclass
class GraphResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    odata_type: str | None = None  # the body's CSDL type, for strict mode ("graph.event", "Collection(...)")
    code: str = "NoError"  # the Graph error code, for the request log


@dataclass
class GraphRequest:
    front: GraphFrontDoor
    method: str
    path: str  # below /v1.0, decoded
    query: dict[str, str]
    headers: Mapping[str, str]  # case-insensitive
    body: Any
    base: str  # scheme://host:port the client used
    params: dict[str, str]
    caller: Caller
    mailbox: str | None
    http_request: web.Request | None = None
    # getSchedule: codes injected by fault rules for single schedules.
    schedule_faults: dict[str, str] = field(default_factory=dict)

    @property
    def sim(self) -> Simulator:
        return self.front.sim

    @property
    def org(self) -> Organisation:
        return self.front.sim.org

    @property
    def directory(self) -> Directory:
        return self.front.sim.graph

    @property
    def schema(self) -> GraphSchema | None:
        return self.front.sim.graph_schema

    @property
    def prefer(self) -> dict[str, str]:
        values = self.headers.getall("Prefer", []) if hasattr(self.headers, "getall") else []  # type: ignore[attr-defined]
        if not values and self.headers.get("Prefer"):
            values = [self.headers["Prefer"]]
        return preferences(values)

    def view(self, **kwargs: Any) -> View:
        return View(base=self.base, zone_name=self.prefer.get("outlook.timezone") or None, **kwargs)


Handler = Callable[[GraphRequest], "GraphResponse | Awaitable[GraphResponse]"]


@dataclass(frozen=True)
class Route:
    operation: str
    handler: Handler
    roles: tuple[str, ...]
    body: tuple[str, ...] | None = None  # ("type", T) or ("action", name, binding) for strict checks
    per_mailbox: bool = True  # the path names a user: access policy, concurrency limit


_TABLE: list[tuple[str, tuple[str, ...], Route]] = []


def _add(method: str, pattern: str, route: Route) -> None:
    _TABLE.append((method, tuple(pattern.strip("/").lower().split("/")), route))


def register() -> None:
    """Fill the table (the handlers import this module, so registration waits until they are loaded)."""
    if _TABLE:
        return
    from ews_sim.graph import batch, events, schedule, users

    event_body = ("type", "graph.event")
    for prefix in ("users/{user}", "users/{user}/calendar"):
        _add("GET", f"{prefix}/events", Route("graph.listEvents", events.list_events, READ_ROLES))
        _add("POST", f"{prefix}/events", Route("graph.createEvent", events.create_event, WRITE_ROLES, event_body))
        _add("GET", f"{prefix}/calendarView", Route("graph.calendarView", events.calendar_view, READ_ROLES))
        _add("GET", f"{prefix}/events/{{event}}", Route("graph.getEvent", events.get_event, READ_ROLES))
        _add(
            "PATCH",
            f"{prefix}/events/{{event}}",
            Route("graph.updateEvent", events.update_event, WRITE_ROLES, event_body),
        )
        _add("DELETE", f"{prefix}/events/{{event}}", Route("graph.deleteEvent", events.delete_event, WRITE_ROLES))
        _add(
            "GET",
            f"{prefix}/events/{{event}}/instances",
            Route("graph.listInstances", events.list_instances, READ_ROLES),
        )
        for action, operation, handler in (
            ("cancel", "graph.cancelEvent", events.cancel_event),
            ("accept", "graph.acceptEvent", events.responder("Accept")),
            ("tentativelyAccept", "graph.tentativelyAcceptEvent", events.responder("Tentative")),
            ("decline", "graph.declineEvent", events.responder("Decline")),
        ):
            _add(
                "POST",
                f"{prefix}/events/{{event}}/{action}",
                Route(operation, handler, WRITE_ROLES, ("action", action, "graph.event")),
            )
    _add("GET", "users/{user}/calendar", Route("graph.getCalendar", events.get_calendar, READ_ROLES))
    _add("GET", "users/{user}", Route("graph.getUser", users.get_user, DIRECTORY_ROLES, per_mailbox=False))
    _add(
        "POST",
        "users/{user}/calendar/getSchedule",
        Route("graph.getSchedule", schedule.get_schedule, SCHEDULE_ROLES, ("action", "getSchedule", "graph.calendar")),
    )
    _add("POST", "$batch", Route("graph.batch", batch.run_batch, (), per_mailbox=False))


def match(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for a request below /v1.0, or the 400/405 Graph answers for an unknown path or method."""
    register()
    segments = [s for s in path.strip("/").split("/") if s != ""]
    if segments and segments[0].lower() == "me":
        raise bad_request("/me request is only valid with delegated authentication flow.")
    allowed = False
    for verb, pattern, route in _TABLE:
        if len(pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        for want, got in zip(pattern, segments, strict=True):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want != got.lower():
                break
        else:
            if verb == method:
                return route, params
            allowed = True
    if allowed:
        raise GraphError(405, "BadRequest", "Specified HTTP method is not allowed for the request target.")
    missing = segments[-1] if segments else ""
    raise bad_request(f"Resource not found for the segment '{missing}'.")

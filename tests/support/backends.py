"""How the service tests speak of each calendar backend: its tenant settings against the simulator, the names of its
operations in the simulator's log and fault rules, and how it is throttled. One test body, two backends."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ews_sim.app import Running
from ews_sim.testing import (
    GRAPH_APP_ID,
    GRAPH_APP_SECRET,
    GRAPH_TENANT,
    LIMITED_APP_ID,
    LIMITED_APP_SECRET,
    SERVICE_ACCOUNT,
    SERVICE_PASSWORD,
)

# Credentials of the test organisation: "full" reaches every mailbox, "limited" only some (EWS: the helpdesk
# account may impersonate alice; Graph: an app whose access policy allows alice and bob).
EWS_ACCOUNTS = {"full": (SERVICE_ACCOUNT, SERVICE_PASSWORD), "limited": ("helpdesk@contoso.com", "h3lp")}
GRAPH_APPS = {"full": (GRAPH_APP_ID, GRAPH_APP_SECRET), "limited": (LIMITED_APP_ID, LIMITED_APP_SECRET)}


@dataclass(frozen=True)
class Dialect:
    name: str
    find: str
    create: str
    update: str
    delete: str
    cancel: str
    read: str
    availability: str
    schedules_per_request: int
    throttled_code: str  # what the simulator's log says of a throttled request
    transient_code: str  # a code the backend treats as a transient failure of a read

    def tenant_args(self, running: Running, credentials: str = "full", secret: str | None = None) -> list[str]:
        if self.name == "ews":
            username, password = EWS_ACCOUNTS[credentials]
            return ["--ews-url", running.ews_url, "--ews-username", username, "--ews-password", secret or password]
        client_id, client_secret = GRAPH_APPS[credentials]
        assert running.ca_file is not None
        return [
            "--backend",
            "graph",
            "--azure-tenant",
            GRAPH_TENANT,
            "--client-id",
            client_id,
            "--client-secret",
            secret or client_secret,
            "--authority",
            running.tls_url,
            "--graph-url",
            running.graph_url,
            "--ca-bundle",
            str(running.ca_file),
        ]

    def throttle(self, back_off_ms: int) -> dict[str, Any]:
        """A fault effect: the server asks the client to wait this long."""
        if self.name == "ews":
            return {"responseCode": "ErrorServerBusy", "backOffMilliseconds": back_off_ms}
        return {"httpStatus": 429, "retryAfterSeconds": math.ceil(back_off_ms / 1000)}

    def back_off_seconds(self, back_off_ms: int) -> float:
        return back_off_ms / 1000 if self.name == "ews" else math.ceil(back_off_ms / 1000)

    def account(self, credentials: str) -> str:
        """Who the simulator's log says made a request with these credentials."""
        return (EWS_ACCOUNTS if self.name == "ews" else GRAPH_APPS)[credentials][0]

    @property
    def window_days(self) -> int:
        """The longest window one availability request may cover."""
        return 42 if self.name == "ews" else 61

    @property
    def writes(self) -> tuple[str, ...]:
        return (self.create, self.update, self.delete, self.cancel)


EWS = Dialect(
    name="ews",
    find="FindItem",
    create="CreateItem",
    update="UpdateItem",
    delete="DeleteItem",
    cancel="DeleteItem",
    read="GetItem",
    availability="GetUserAvailability",
    schedules_per_request=100,
    throttled_code="ErrorServerBusy",
    transient_code="ErrorMailboxStoreUnavailable",
)
GRAPH = Dialect(
    name="graph",
    find="graph.listEvents",
    create="graph.createEvent",
    update="graph.updateEvent",
    delete="graph.deleteEvent",
    cancel="graph.cancelEvent",
    read="graph.getEvent",
    availability="graph.getSchedule",
    schedules_per_request=20,
    throttled_code="TooManyRequests",
    transient_code="ErrorInternalServerTransientError",
)
DIALECTS = {"ews": EWS, "graph": GRAPH}

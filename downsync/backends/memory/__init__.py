"""An in-memory calendar organisation: the core's fast tests run over it, with faults injected at will.

It is a backend like the others (a tenant may use it: ``downsync tenant create NAME --backend memory``),
but its calendars live in the process that opened it, so it serves tests and experiments, not deployments.
Tenants naming the same ``org`` share one organisation, as tenants of one Exchange organisation do.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from downsync.backends import Backend, OpenContext
from downsync.core.gateway import CalendarGateway


class MemoryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org: str = Field(
        default="default",
        description="The in-process organisation; tenants naming the same one share its calendars.",
        json_schema_extra={"option": "--memory-org"},
    )


def _open(options: MemoryOptions, context: OpenContext) -> CalendarGateway:
    from downsync.backends.memory.gateway import MemoryGateway, organisation

    return MemoryGateway(organisation(options.org))


BACKEND = Backend(name="memory", summary="In-process calendars, for tests", options=MemoryOptions, open=_open)

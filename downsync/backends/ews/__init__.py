"""Exchange Web Services through exchangelib: Exchange Server on-premises (and Exchange Online until EWS ends there).

The service account impersonates each mailbox it writes; availability is asked as the service account.
Nothing outside this package imports exchangelib.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from downsync.backends import Backend, OpenContext
from downsync.core.gateway import CalendarGateway


class EwsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="The EWS endpoint, e.g. https://mail.example.com/EWS/Exchange.asmx",
        json_schema_extra={"option": "--ews-url"},
    )
    username: str = Field(
        description="The service account that impersonates the mailboxes.",
        json_schema_extra={"option": "--ews-username"},
    )
    password: SecretStr = Field(description="Its password.", json_schema_extra={"option": "--ews-password"})
    auth_type: Literal["basic", "ntlm"] = Field(default="basic", json_schema_extra={"option": "--auth-type"})
    build: str = Field(
        default="15.1.2507.6",
        description="The Exchange build, so exchangelib never probes the server's version.",
        json_schema_extra={"option": "--build"},
    )
    max_concurrency: int = Field(
        default=27,
        ge=1,
        le=1000,
        description="Requests the service account may have under way at once, all workers together: the "
        "EWSMaxConcurrency of its throttling policy (27 by default on Exchange).",
        json_schema_extra={"option": "--ews-max-concurrency"},
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("the EWS URL must start with http:// or https://")
        return value

    @field_validator("build")
    @classmethod
    def _build(cls, value: str) -> str:
        parts = value.split(".")
        if not 2 <= len(parts) <= 4 or not all(p.isdigit() for p in parts):
            raise ValueError("the server build looks like 15.1.2507.6")
        return value


def _open(options: EwsOptions, context: OpenContext) -> CalendarGateway:
    from downsync.backends.ews.gateway import EwsGateway

    return EwsGateway(options, context)


def _check(gateway: CalendarGateway, mailbox: str | None) -> list[str]:
    from downsync.backends.ews.check import check

    return check(gateway, mailbox)  # type: ignore[arg-type]


BACKEND = Backend(
    name="ews",
    summary="Exchange Web Services (Exchange Server on-premises)",
    options=EwsOptions,
    open=_open,
    check=_check,
)

"""``downsync tenant check`` for EWS: the service account's credentials, impersonation of one mailbox, its calendar."""

from __future__ import annotations

from downsync.backends.ews.gateway import EwsGateway
from downsync.core.errors import GatewayError
from downsync.core.model import POSTBACK, Tag


def check(gateway: EwsGateway, mailbox: str | None) -> list[str]:
    target = mailbox or gateway.connection.username
    try:
        gateway.find(target, Tag("check", POSTBACK, "downsync-tenant-check"))
    except GatewayError as error:
        return [f"{target}: {error.code}: {error.message}"]
    return []

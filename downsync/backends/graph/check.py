"""``downsync tenant check`` for Graph: a token, then one mailbox's calendar, and what is wrong in plain words."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from downsync.core.errors import GatewayError


def check(gateway: Any, mailbox: str | None) -> list[str]:
    client = gateway.client
    try:
        client.tokens.token(fresh=True)
    except GatewayError as error:
        return [f"token: {error.message}"]
    if mailbox is None:
        return []
    try:
        calendar = client.call("GET", f"/users/{quote(mailbox, safe='@')}/calendar", mailbox)
        client.call("GET", f"/users/{quote(mailbox, safe='@')}/events", mailbox, params={"$top": "1", "$select": "id"})
    except GatewayError as error:
        return [f"{mailbox}: {error.code}: {error.message}"]
    problems = []
    if "teamsForBusiness" not in (calendar.get("allowedOnlineMeetingProviders") or []):
        problems.append(f"{mailbox}: its calendar allows no MS Teams meetings (meetings in 'MS Teams' stay text)")
    return problems

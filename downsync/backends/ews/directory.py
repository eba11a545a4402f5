"""An address's mailbox, from the directory: ResolveNames as the tenant's service account (no impersonation).

Exchange matches a bare address against primary addresses only; ``smtp:`` makes it match the start of every
proxy address (aliases included), so it is always sent, and only the directory is searched (a contact in the
service account's own folders is nobody's mailbox). Exchange takes one name a request.
"""

from __future__ import annotations

from typing import Any

from exchangelib.errors import ErrorNameResolutionNoResults
from exchangelib.items import ACTIVE_DIRECTORY
from exchangelib.properties import Mailbox
from exchangelib.services import ResolveNames

from downsync.backends.ews.availability import protocol
from downsync.backends.ews.connection import Connection

MAILBOX_TYPES = (None, Mailbox.MAILBOX, "GroupMailbox")


def _candidates(connection: Connection, address: str, timeout: float, full: bool) -> list[Any] | None:
    """The mailboxes the directory finds for ``smtp:address`` (with their contacts when ``full``); None for none."""
    service = ResolveNames(protocol=protocol(connection), timeout=timeout)
    found = []
    for answer in service.call(
        unresolved_entries=[f"smtp:{address}"], search_scope=ACTIVE_DIRECTORY, return_full_contact_data=full
    ):
        if isinstance(answer, ErrorNameResolutionNoResults):
            return None
        if isinstance(answer, Exception):
            raise answer
        mailbox = answer[0] if full else answer
        if mailbox is not None and mailbox.mailbox_type in MAILBOX_TYPES and mailbox.email_address:
            found.append(answer)
    return found


def _addresses(contact: Any) -> set[str]:
    """A directory contact's proxy addresses (``SMTP:primary``, ``smtp:other``), lower-cased, without the prefix."""
    out = set()
    for entry in getattr(contact, "email_addresses", None) or []:
        text = str(entry.email or "").strip().lower()
        out.add(text.partition(":")[2] if text.startswith("smtp:") else text)
    return out


class ResolveAddress:
    def __call__(self, connection: Connection, address: str, timeout: float) -> str | None:
        wanted = address.strip().lower()
        found = _candidates(connection, wanted, timeout, full=False)
        if not found:
            return None
        if len(found) == 1:
            return str(found[0].email_address)
        exact = [m for m in found if m.email_address.lower() == wanted]
        if exact:
            return str(exact[0].email_address)
        # The address is the start of several mailboxes' addresses: the one holding exactly it, if any.
        detailed = _candidates(connection, wanted, timeout, full=True) or []
        owners = {str(m.email_address) for m, contact in detailed if wanted in _addresses(contact)}
        return owners.pop() if len(owners) == 1 else None


resolve_address = ResolveAddress()

"""ConvertId: an item or folder id between its formats; also how exchangelib learns the server's version.

A client that does not know the server's version sends ``ConvertId`` for the id ``DUMMY`` and
reads the version from the answer's ``ServerVersionInfo`` header; Exchange answers that id with
``ErrorInvalidIdMalformed`` "Id is malformed." (the example in Microsoft's ConvertId reference).

The simulator's ids are opaque bytes written in base64 (``EwsId``); ``EntryId`` and ``StoreId`` are
the same bytes in base64, ``HexEntryId`` in upper-case hex, ``OwaId`` in URL-safe base64 and
``EwsLegacyId`` like ``EwsId``. Real Exchange embeds the mailbox in an ``EwsId`` and a MAPI entry id
differs from it; a client must treat every format as opaque, which the simulator's choice keeps
honest enough while letting any format convert back to the id it came from.
"""

from __future__ import annotations

import base64
import binascii

from lxml import etree

from ews_sim import responses
from ews_sim.ops.base import Context, Operation, items_container
from ews_sim.xmlutil import attr, local

FORMATS = ("EwsLegacyId", "EwsId", "EntryId", "HexEntryId", "StoreId", "OwaId")
MALFORMED = "Id is malformed."


def decode(value: str, kind: str) -> bytes | None:
    """The id's bytes, or None if it is not an id of that format."""
    try:
        if kind == "HexEntryId":
            raw = bytes.fromhex(value)
        elif kind == "OwaId":
            raw = base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
        else:
            raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw or None


def encode(raw: bytes, kind: str) -> str:
    if kind == "HexEntryId":
        return raw.hex().upper()
    text = base64.b64encode(raw).decode()
    return text.replace("+", "-").replace("/", "_") if kind == "OwaId" else text


class ConvertId(Operation):
    name = "ConvertId"
    needs_mailbox = False

    def count(self, elem: etree._Element) -> int:
        return len(items_container(elem, "SourceIds"))

    def run(self, ctx: Context, elem: etree._Element) -> str:
        destination = elem.get("DestinationFormat", "EwsId")
        messages = []
        for source in items_container(elem, "SourceIds"):
            if local(source) != "AlternateId":
                messages.append(
                    responses.message(
                        self.name, code="ErrorFolderNotFound", text="The organisation has no public folders."
                    )
                )
                continue
            raw = decode(source.get("Id", ""), source.get("Format", ""))
            if raw is None:
                messages.append(responses.message(self.name, code="ErrorInvalidIdMalformed", text=MALFORMED))
                continue
            mailbox = source.get("Mailbox", "")
            if not ctx.org.is_mailbox(mailbox):
                messages.append(
                    responses.message(
                        self.name,
                        code="ErrorNonExistentMailbox",
                        text=responses.message_text("ErrorNonExistentMailbox"),
                    )
                )
                continue
            converted = (
                f'<m:AlternateId xsi:type="t:AlternateIdType" Format={attr(destination)} '
                f"Id={attr(encode(raw, destination))} Mailbox={attr(mailbox)}/>"
            )
            messages.append(responses.message(self.name, inner=converted))
        return responses.response(self.name, messages)

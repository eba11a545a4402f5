"""GetServerTimeZones: definitions with periods and transitions, as exchangelib's availability call needs."""

from __future__ import annotations

from lxml import etree

from ews_sim import responses, timezones
from ews_sim.ops.base import Operation
from ews_sim.xmlutil import mq, parse_bool, tq


class GetServerTimeZones(Operation):
    name = "GetServerTimeZones"
    needs_mailbox = False

    def run(self, ctx: object, elem: etree._Element) -> str:
        full = parse_bool(elem.get("ReturnFullTimeZoneData", "true"))
        ids_elem = elem.find(mq("Ids"))
        ids = [i.text or "" for i in ids_elem.findall(tq("Id"))] if ids_elem is not None else timezones.all_ids()
        try:
            body = "".join(timezones.definition_xml(i, full) for i in ids)
        except timezones.UnknownTimeZoneError as exc:
            return responses.response(
                self.name,
                [
                    responses.message(
                        self.name,
                        code="ErrorInvalidOperation",
                        text=f"The time zone {exc} is not known to the server.",
                    )
                ],
            )
        return responses.response(
            self.name,
            [responses.message(self.name, inner=f"<m:TimeZoneDefinitions>{body}</m:TimeZoneDefinitions>")],
        )

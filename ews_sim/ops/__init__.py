"""One class per EWS operation, registered by the name of the element inside ``soap:Body``."""

from __future__ import annotations

from ews_sim.ops.base import Context, MessageError, Operation, SoapFault
from ews_sim.ops.convert_id import ConvertId
from ews_sim.ops.create_item import CreateItem
from ews_sim.ops.delete_item import DeleteItem
from ews_sim.ops.find_folder import FindFolder
from ews_sim.ops.find_item import FindItem
from ews_sim.ops.get_folder import GetFolder
from ews_sim.ops.get_item import GetItem
from ews_sim.ops.get_server_time_zones import GetServerTimeZones
from ews_sim.ops.get_user_availability import GetUserAvailability
from ews_sim.ops.resolve_names import ResolveNames
from ews_sim.ops.update_item import UpdateItem

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        GetFolder(),
        CreateItem(),
        GetItem(),
        UpdateItem(),
        DeleteItem(),
        FindItem(),
        GetServerTimeZones(),
        GetUserAvailability(),
        ConvertId(),
        FindFolder(),
        ResolveNames(),
    )
}

__all__ = ["OPERATIONS", "Context", "MessageError", "Operation", "SoapFault"]

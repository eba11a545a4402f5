"""users: a user of the directory by any of its mailbox's addresses, with its primary address and the others.

``GET /users/{id}`` needs a directory permission (``User.Read.All``, ``User.ReadBasic.All`` or
``Directory.Read.All``), as Graph's does, and is not subject to the application access policy,
which governs mailboxes. ``mail`` and ``userPrincipalName`` are the primary address;
``proxyAddresses`` lists it as ``SMTP:`` and the mailbox's other addresses as ``smtp:``.
Graph itself looks users up by object id or user principal name; the simulator also takes any
address of the mailbox, as its calendar endpoints do.
"""

from __future__ import annotations

from ews_sim.graph import query
from ews_sim.graph.directory import object_id
from ews_sim.graph.routes import GraphRequest, GraphResponse

USER_PROPERTIES = {"id", "displayName", "mail", "userPrincipalName", "proxyAddresses", "otherMails", "accountEnabled"}


def get_user(req: GraphRequest) -> GraphResponse:
    primary = req.mailbox or ""
    others = req.org.addresses(primary)[1:]
    body = {
        "id": object_id("user", primary),
        "displayName": primary,
        "mail": primary,
        "userPrincipalName": primary,
        "proxyAddresses": [f"SMTP:{primary}", *(f"smtp:{a}" for a in others)],
        "otherMails": [],
        "accountEnabled": True,
    }
    select = query.parse_select(req.query.get("$select"), USER_PROPERTIES)
    if select is not None:
        body = {k: v for k, v in body.items() if k in select or k == "id"}
    return GraphResponse(
        200, {"@odata.context": f"{req.base}/v1.0/$metadata#users/$entity", **body}, odata_type="graph.user"
    )

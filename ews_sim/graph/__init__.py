"""The simulator's Microsoft Graph front door: Entra's token endpoint and Graph's calendar REST API.

It serves the same organisation as the EWS front door (``ews_sim.store``), with the same meeting
semantics (``ews_sim.meetings``), so an event written through one door is read through the other.

Modules, one concern each: ``directory`` (apps, tenants, access policy, limits), ``auth`` (token
endpoint, OpenID discovery, access tokens), ``errors`` (Graph's and Entra's error bodies),
``schema`` (validation against Microsoft's CSDL), ``json`` (event <-> JSON), ``query`` (OData
query options), ``routes`` (URL -> operation), ``events``, ``schedule`` and ``batch`` (the
handlers), ``server`` (the request pipeline: auth, faults, throttling, logging, strictness).
"""

"""A simulator of one Exchange organisation that the real exchangelib (EWS) and Graph clients (msal, REST) talk to.

It keeps an organisation (mailboxes, service accounts, app registrations, calendars) in memory,
answers EWS SOAP requests and Microsoft Graph REST requests (``ews_sim.graph``) for the calendar
operations downsync uses, on the same store, and injects the failures real Exchange produces.
Its control API lives under ``/_sim/`` on the same port.
"""

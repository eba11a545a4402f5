"""An Exchange Web Services simulator that the real exchangelib talks to over HTTP.

It keeps an organisation (mailboxes, service accounts, calendars) in memory, answers EWS SOAP
requests for the calendar operations downsync uses, and injects the failures real Exchange
produces. Its control API lives under ``/_sim/`` on the same port.
"""

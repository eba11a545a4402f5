"""The HTTP shim Salesforce talks to: validates, authorises, records, enqueues, and answers in time."""

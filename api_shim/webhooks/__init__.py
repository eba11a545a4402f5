"""``/api/salesforce/scheduler/webhooks``: callback URLs told, signed, when jobs become final."""

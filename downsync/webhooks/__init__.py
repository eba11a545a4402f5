"""Result webhooks: callback URLs told, signed, when a job (and, if asked, each mailbox result) becomes final.

``service`` writes deliveries into the store's outbox in the transaction that makes the change (``job_closed``) or
finds them afterwards (``scan``); ``delivery`` sends them from the workers, at least once, with retries; ``signing``
and ``urls`` are the signature and the rules for receivers; ``subscriptions`` registers them and keeps their secrets.
"""

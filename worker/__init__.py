"""Celery workers: converge each (event, mailbox) pair to the latest accepted state through exchangelib."""

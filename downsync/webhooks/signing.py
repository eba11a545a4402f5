"""The signature on every delivery, as Stripe and Calendly sign theirs:
``X-Downsync-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">``, with one ``v1`` per live secret
(two during a rotation), so a receiver holding either secret accepts it."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

HEADER = "X-Downsync-Signature"
SECRET_PREFIX = "whsec_"
# How far a signature's time may be from the receiver's clock before it is taken for a replay.
DEFAULT_TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256, keyed by the whole secret (prefix included), of ``"<timestamp>.<body>"``."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secrets_: Sequence[str], timestamp: int, body: bytes) -> str:
    """The header's value: the time, then a ``v1`` per secret, the current one first."""
    if not secrets_:
        raise ValueError("a delivery is signed with at least one secret")
    return ",".join([f"t={timestamp}", *(f"v1={signature(s, timestamp, body)}" for s in secrets_)])


def parse(header: str) -> tuple[int | None, list[str]]:
    """The time and the ``v1`` signatures of a header; unknown schemes (a future ``v2``) are left out."""
    timestamp: int | None = None
    found: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            found.append(value)
    return timestamp, found


def verify(header: str, body: bytes, secret: str, now: float, tolerance: float = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """Whether ``body`` was signed with ``secret`` within ``tolerance`` seconds of ``now`` (what a receiver checks)."""
    timestamp, found = parse(header)
    if timestamp is None or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in found)

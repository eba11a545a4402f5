"""The delivery signature: what a receiver recomputes, with either secret during a rotation."""

from __future__ import annotations

import hashlib
import hmac
import re

from downsync.webhooks import signing

BODY = b'{"jobId":"4f1c","state":"succeeded"}'


def test_the_header_is_the_time_and_a_hex_hmac_of_time_dot_body() -> None:
    header = signing.sign(["whsec_one"], 1_900_000_000, BODY)
    assert re.fullmatch(r"t=1900000000,v1=[0-9a-f]{64}", header)
    expected = hmac.new(b"whsec_one", b"1900000000." + BODY, hashlib.sha256).hexdigest()
    assert header.endswith(f"v1={expected}")
    assert signing.verify(header, BODY, "whsec_one", now=1_900_000_010)


def test_during_a_rotation_either_secret_verifies_and_the_current_signs_first() -> None:
    header = signing.sign(["whsec_new", "whsec_old"], 1_900_000_000, BODY)
    timestamp, found = signing.parse(header)
    assert timestamp == 1_900_000_000 and len(found) == 2
    assert found[0] == signing.signature("whsec_new", 1_900_000_000, BODY)
    for secret in ("whsec_new", "whsec_old"):
        assert signing.verify(header, BODY, secret, now=1_900_000_000)
    assert not signing.verify(header, BODY, "whsec_other", now=1_900_000_000)


def test_a_changed_body_an_old_time_or_a_bad_header_is_refused() -> None:
    header = signing.sign(["whsec_one"], 1_900_000_000, BODY)
    assert not signing.verify(header, BODY + b" ", "whsec_one", now=1_900_000_000)
    assert not signing.verify(header, BODY, "whsec_one", now=1_900_000_000 + 301)
    assert signing.verify(header, BODY, "whsec_one", now=1_900_000_000 + 301, tolerance=600)
    for bad in ("", "v1=abc", "t=x,v1=abc", header.replace("v1=", "v0=")):
        assert not signing.verify(bad, BODY, "whsec_one", now=1_900_000_000)


def test_secrets_are_random_and_prefixed() -> None:
    first, second = signing.new_secret(), signing.new_secret()
    assert first != second and first.startswith("whsec_") and len(first) > 40

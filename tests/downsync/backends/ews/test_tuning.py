"""The two changes downsync makes to exchangelib's behaviour (downsync/backends/ews/tuning.py)."""

from __future__ import annotations

import pytest
import requests
from exchangelib.errors import SessionPoolMinSizeReached
from exchangelib.protocol import Protocol
from exchangelib.services import GetFolder

import downsync.backends.ews.connection  # noqa: F401  (applies the tuning)

ENVELOPE = (
    b'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'
    b'<s:Header><h:ServerVersionInfo xmlns:h="http://schemas.microsoft.com/exchange/services/2006/types" '
    b'MajorVersion="15"/></s:Header><s:Body><x/></s:Body></s:Envelope>'
)


def test_the_pool_is_never_shrunk() -> None:
    with pytest.raises(SessionPoolMinSizeReached):
        Protocol.decrease_poolsize(object())  # type: ignore[arg-type]


def test_a_downloaded_response_is_parsed_from_memory() -> None:
    response = requests.Response()
    response._content = ENVELOPE
    response.raw = None  # iter_content would fail: the parser must not read through it
    header, body = GetFolder._get_soap_parts(response)
    assert header is not None and body is not None and body[0].tag == "x"


def test_a_streamed_response_is_still_read_in_pieces() -> None:
    class Streamed:
        def iter_content(self) -> object:
            return iter([ENVELOPE[:50], ENVELOPE[50:]])

    _, body = GetFolder._get_soap_parts(Streamed())
    assert body[0].tag == "x"


def test_a_session_reads_the_proxy_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/corporate.pem")
    url = "https://mail.example/EWS/Exchange.asmx"
    proxied = Protocol.raw_session(url)
    direct = Protocol.raw_session("https://direct.example/EWS/Exchange.asmx")
    assert proxied.proxies["https"] == "http://proxy.example:3128" and not proxied.trust_env
    assert proxied.verify == "/etc/ssl/corporate.pem"
    assert "https" not in direct.proxies
    # What a request of the session uses is what was read when it opened.
    monkeypatch.setenv("HTTPS_PROXY", "http://elsewhere.example:3128")
    used = proxied.merge_environment_settings(url, {}, None, None, None)
    assert used["proxies"]["https"] == "http://proxy.example:3128" and used["verify"] == "/etc/ssl/corporate.pem"

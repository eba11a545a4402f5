"""Which callback URLs are refused: the scheme (https in production), credentials, and every address that is not
public, however the host names it; a name is resolved, and every address it resolves to must be allowed."""

from __future__ import annotations

import ipaddress

import pytest

from downsync.webhooks import urls


def resolver(*addresses: str) -> urls.Resolver:
    def resolve(host: str, port: int) -> list[urls.Address]:
        return [ipaddress.ip_address(a) for a in addresses]

    return resolve


def nowhere(host: str, port: int) -> list[urls.Address]:
    raise OSError("Name or service not known")


PUBLIC = resolver("93.184.216.34")


def check(url: str, production: bool = True, allow_private: bool = False, via: urls.Resolver = PUBLIC) -> urls.Target:
    return urls.check(url, require_https=production, allow_private=allow_private, resolver=via)


def test_a_public_https_url_is_allowed_with_its_port_and_addresses() -> None:
    target = check("https://hooks.example.com/downsync?tenant=acme")
    assert (target.scheme, target.host, target.port) == ("https", "hooks.example.com", 443)
    assert target.addresses == (ipaddress.ip_address("93.184.216.34"),)
    assert check("https://hooks.example.com:8443/x").port == 8443
    assert check("http://hooks.example.com/x", production=False).port == 80


@pytest.mark.parametrize(
    ("url", "production", "problem"),
    [
        ("http://hooks.example.com/x", True, "must be an https URL (http is allowed outside production only)"),
        ("ftp://hooks.example.com/x", False, "must be an http or https URL"),
        ("hooks.example.com/x", True, "must be an https URL"),
        ("https:///x", True, "has no host"),
        ("https://user:pw@hooks.example.com/x", True, "may not hold a user name or password"),
        ("https://hooks.example.com/x#frag", True, "may not hold a fragment"),
        ("https://hooks.example.com:99999/x", True, "is not a URL"),
        ("https://hooks.example.com/a b", True, "holds spaces or control characters"),
        ("https://hooks.example.com/" + "a" * 2000, True, "is longer than 2000 characters"),
    ],
)
def test_shapes_refused(url: str, production: bool, problem: str) -> None:
    with pytest.raises(urls.UrlRefused, match=problem.replace("(", r"\(").replace(")", r"\)")):
        check(url, production=production)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("::1", "a loopback address"),
        ("::ffff:127.0.0.1", "a loopback address"),
        ("10.1.2.3", "a private address"),
        ("172.16.0.1", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd00::1", "a private address"),
        ("169.254.169.254", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("0.0.0.0", "an unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("100.64.0.1", "an address that is not public"),
    ],
)
def test_addresses_that_are_not_public_are_refused_unless_allowed(address: str, reason: str) -> None:
    with pytest.raises(urls.UrlRefused, match=f"names {reason}"):
        check("https://hooks.example.com/x", via=resolver(address))
    assert check("https://hooks.example.com/x", allow_private=True, via=resolver(address)).addresses


def test_a_name_with_one_private_address_among_public_ones_is_refused() -> None:
    with pytest.raises(urls.UrlRefused, match=r"a private address: hooks.example.com \(10.0.0.5\)"):
        check("https://hooks.example.com/x", via=resolver("93.184.216.34", "10.0.0.5"))


def test_a_host_that_does_not_resolve_is_refused_even_where_private_ones_are_allowed() -> None:
    with pytest.raises(urls.UrlRefused, match="names a host that does not resolve"):
        check("https://nowhere.invalid/x", allow_private=True, via=nowhere)


def test_literal_addresses_and_their_other_spellings_are_resolved_for_real() -> None:
    # No fake resolver: the system's own getaddrinfo reads these spellings of 127.0.0.1 as the address they are.
    for url in ("https://127.0.0.1/x", "https://[::1]/x", "https://2130706433/x", "https://localhost/x"):
        with pytest.raises(urls.UrlRefused, match="a loopback address"):
            urls.check(url, require_https=True, allow_private=False)

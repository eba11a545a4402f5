"""Which callback URLs are allowed: https in production, and no receiver inside the service's own network.

A tenant chooses the URL and the service calls it, so a URL naming a private, loopback or link-local address (or a
host name resolving to one) would let a tenant reach what only the service should (a metadata endpoint, an admin
port). Host names are resolved when a subscription is registered and again before every attempt, since DNS may
change; the attempt then connects to the address that was checked, so a second lookup cannot swap in another.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_URL_LENGTH = 2000
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) -> the addresses it resolves to; raises OSError when it does not resolve.
Resolver = Callable[[str, int], list[Address]]


class UrlRefused(ValueError):
    """The URL may not be a callback; the message says why, for the caller."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses it resolved to (all allowed); attempts connect to ``addresses[0]``."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[Address, ...]


_lookups = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


def resolve(host: str, port: int, timeout: float = 10.0) -> list[Address]:
    """The host's addresses, in the resolver's order. getaddrinfo has no timeout of its own, so it runs in a thread
    that is given up on after ``timeout``."""
    future = _lookups.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        infos = future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        raise OSError(f"resolving {host} took more than {timeout:.0f} s") from None
    found: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # an IPv6 zone ("%eth0") is no address
        if address not in found:
            found.append(address)
    return found


def why_refused(address: Address) -> str | None:
    """Why a receiver may not be at this address (None: it may): anything not globally routable is refused."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "an address that is not public"
    return None


def check_shape(url: str, require_https: bool) -> SplitResult:
    """What can be told from the text alone: the scheme, a host, no credentials, a sane length."""
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url):
        raise UrlRefused("holds spaces or control characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a port that is no number or out of range
    except ValueError as exc:
        raise UrlRefused(f"is not a URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise UrlRefused("must be an https URL" if require_https else "must be an http or https URL")
    if require_https and scheme != "https":
        raise UrlRefused("must be an https URL (http is allowed outside production only)")
    if not parts.hostname:
        raise UrlRefused("has no host")
    if parts.username is not None or parts.password is not None:
        # Credentials in the URL would show in every list of subscriptions; the signature authenticates us.
        raise UrlRefused("may not hold a user name or password")
    if parts.fragment:
        raise UrlRefused("may not hold a fragment (#...)")
    return parts


def check(url: str, *, require_https: bool, allow_private: bool, resolver: Resolver | None = None) -> Target:
    """The URL as a callback, or ``UrlRefused`` saying why. Every address the host resolves to must be allowed: a
    name with one public and one private address is refused rather than half trusted."""
    parts = check_shape(url, require_https)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    port = parts.port or (443 if scheme == "https" else 80)
    try:
        addresses = (resolver or resolve)(host, port)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused(f"names a host that does not resolve ({host}: {exc})") from None
    if not addresses:
        raise UrlRefused(f"names a host that does not resolve ({host})")
    if not allow_private:
        for address in addresses:
            reason = why_refused(address)
            if reason is not None:
                shown = host if host == str(address) else f"{host} ({address})"
                raise UrlRefused(f"names {reason}: {shown}; receivers must be reachable on the internet")
    return Target(url=url, scheme=scheme, host=host, port=port, addresses=tuple(addresses))

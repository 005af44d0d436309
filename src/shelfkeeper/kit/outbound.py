"""The guard for outbound requests to addresses a tenant chose (webhooks): which URLs and
which IP addresses the service may connect to. Pure code, no I/O: name resolution is passed
in (`Resolver`; `system_resolver` is the default), so the rules are tested without a
network.

A tenant must not be able to make the service reach what only the service can reach: its own
loopback, the cloud metadata service (169.254.169.254), the private network it runs in. So a
target is refused when any address its host resolves to is loopback, private, link-local,
multicast, reserved, unspecified, shared (100.64/10) or otherwise not globally routable, for
IPv4 and IPv6 alike; IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
6to4 `2002::/16`, NAT64 `64:ff9b::/96`) are judged by the embedded address too (and an
IPv4-mapped address is never global, so it is refused whatever it embeds).

The caller connects to one of the addresses returned by `checked_addresses`, never to the
host name again: a second resolution could answer differently (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""`resolver(host, port)`: the addresses (text) the host name resolves to; raises OSError."""

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048
NUMERIC_LABEL = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
SHARED_ADDRESS_SPACE = ipaddress.IPv4Network("100.64.0.0/10")


class InvalidTarget(ValueError):
    """The URL is not one the service sends requests to (scheme, credentials, no host)."""


class ForbiddenTarget(ValueError):
    """The target's address is not public (and private networks are not allowed)."""


class UnresolvableTarget(ValueError):
    """The target's host name does not resolve."""


@dataclass(frozen=True)
class Target:
    """A parsed outbound URL."""

    url: str
    scheme: str
    host: str
    """The host name or IP literal, without brackets, lower case."""
    port: int
    literal: IPAddress | None
    """The host as an IP address, when the URL names one."""


def parse(url: str) -> Target:
    """Parse and vet an outbound URL: http or https, a host, no user name or password, no
    fragment. Raises InvalidTarget."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidTarget(f"At most {MAX_URL_LENGTH} characters.")
    if any(ord(character) <= 0x20 or ord(character) == 0x7F for character in url):
        raise InvalidTarget("The URL may not contain spaces or control characters.")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
        host = parts.hostname
    except ValueError as error:
        raise InvalidTarget("Not a URL.") from error
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise InvalidTarget("Only http and https URLs are allowed.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise InvalidTarget("The URL may not contain credentials.")
    if not host:
        raise InvalidTarget("The URL needs a host.")
    if parts.fragment:
        raise InvalidTarget("The URL may not have a fragment.")
    if port == 0:
        raise InvalidTarget("Port 0 is not a port to connect to.")
    literal: IPAddress | None
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
        if all(NUMERIC_LABEL.fullmatch(label) for label in host.rstrip(".").split(".")):
            # `http://2130706433/`, `http://127.1/` or `http://0x7f.1/`: the C library reads
            # these as IPv4 numbers. Refuse them rather than guess how they resolve.
            raise InvalidTarget("Write an IPv4 address as four decimal numbers.") from None
    return Target(
        url=url,
        scheme=scheme,
        host=host.lower(),
        port=port if port is not None else DEFAULT_PORTS[scheme],
        literal=literal,
    )


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether `address` is a globally routable unicast address (and, for an IPv6 address
    carrying an IPv4 one, whether that one is too)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return False
        inner = embedded_ipv4(address)
        if inner is not None and not is_public(inner):
            return False
    if isinstance(address, ipaddress.IPv4Address) and address in SHARED_ADDRESS_SPACE:
        return False
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def check_address(address: IPAddress, *, allow_private: bool) -> None:
    """Raise ForbiddenTarget unless `address` may be connected to."""
    if not allow_private and not is_public(address):
        raise ForbiddenTarget(f"{address} is not a public address.")


async def checked_addresses(
    target: Target, *, allow_private: bool, resolver: Resolver
) -> list[IPAddress]:
    """Every address of `target`, each checked: the ones to connect to, in the resolver's
    order. An IP literal is not resolved.

    Raises ForbiddenTarget when any address is forbidden (one bad answer among good ones is
    refused: the connection could otherwise land on it), UnresolvableTarget when the name
    does not resolve.
    """
    if target.literal is not None:
        check_address(target.literal, allow_private=allow_private)
        return [target.literal]
    name = target.host.rstrip(".")
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        # RFC 6761: always the loopback, whatever a resolver says (or fails to say).
        raise ForbiddenTarget(f"{target.host} is the loopback.")
    try:
        answers = await resolver(target.host, target.port)
    except OSError as error:
        raise UnresolvableTarget(f"{target.host} does not resolve.") from error
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            address = ipaddress.ip_address(answer.split("%", 1)[0])
        except ValueError as error:
            raise ForbiddenTarget(f"{target.host} resolved to {answer!r}.") from error
        check_address(address, allow_private=allow_private)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UnresolvableTarget(f"{target.host} does not resolve.")
    return addresses


async def system_resolver(host: str, port: int) -> list[str]:
    """The default `Resolver`: the operating system's, without blocking the event loop (the
    one function here that does I/O)."""
    try:
        answers = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as error:
        raise OSError(f"cannot encode host {host!r}") from error
    return [str(answer[4][0]) for answer in answers]

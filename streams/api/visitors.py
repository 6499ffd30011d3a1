"""Who a page key's request comes from: the visitor whose rate it takes from.

The visitor is the connection's peer address; when the peer is a proxy the API trusts
(``MOMENTS_API_TRUSTED_PROXIES``), it is the right-most address of ``X-Forwarded-For``
that is not itself a trusted proxy: what is left of that, anyone may have written.
An IPv6 visitor counts by its /64 (a home or a phone is given a /64 and picks addresses
in it at will); an IPv4 address mapped into IPv6 (a dual-stack socket's) is that IPv4
address.

>>> proxies = trusted_proxies("10.0.0.0/8, ::1")
>>> visitor("10.1.2.3", ["198.51.100.9, 203.0.113.7, 10.4.5.6"], proxies)
'203.0.113.7'
>>> visitor("198.51.100.9", ["203.0.113.7"], proxies)  # not a proxy: its header is not believed
'198.51.100.9'
>>> visitor("::1", ["2001:db8:1:2:aaaa::1"], proxies)
'2001:db8:1:2::/64'

These addresses are personal data: kept in the API process's memory only, as the keys
of its rate buckets, never logged or put in a metric's labels.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def trusted_proxies(text: str) -> tuple[Network, ...]:
    """The addresses and networks of ``MOMENTS_API_TRUSTED_PROXIES`` (comma-separated; empty:
    none); :class:`ValueError` naming what is neither.

    >>> trusted_proxies("127.0.0.1, 10.0.0.0/8, fd00::/8")
    (IPv4Network('127.0.0.1/32'), IPv4Network('10.0.0.0/8'), IPv6Network('fd00::/8'))
    >>> trusted_proxies(" ")
    ()
    >>> trusted_proxies("10.0.0.0/8, proxy.internal")
    Traceback (most recent call last):
    ...
    ValueError: not an address or network (a.b.c.d[/n], x:y::z[/n]): 'proxy.internal'

    A network of every address is refused: any client would be a trusted proxy, and would
    name its own visitor, a new one at each request, past its visitor's rate limit.

    >>> trusted_proxies("10.0.0.1, ::/0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: '::/0' is every address: any client could name its own visitor ...
    """
    networks: list[Network] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(
                f"not an address or network (a.b.c.d[/n], x:y::z[/n]): {item!r}"
            ) from None
        mapped = network.network_address.ipv4_mapped if network.version == 6 else None
        if mapped is not None and network.prefixlen >= 96:  # as a peer's is read: IPv4
            network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
        if network.prefixlen == 0:
            raise ValueError(
                f"{item!r} is every address: any client could name its own visitor in "
                "X-Forwarded-For; name the proxies' own addresses or networks"
            )
        networks.append(network)
    return tuple(networks)


def broad_networks(networks: tuple[Network, ...]) -> tuple[Network, ...]:
    """Those of ``networks`` that are broad and public: shorter than /8 (IPv4) or /32
    (IPv6), and not within IPv6's unique-local or link-local ranges (IPv4's private ones
    are /8 or narrower). Any client in one can name its own visitor; a proxy's own
    network is seldom so wide.

    >>> broad_networks(trusted_proxies("10.0.0.0/8, 2.0.0.0/7, fd00::/8, 2000::/3, ::1"))
    (IPv4Network('2.0.0.0/7'), IPv6Network('2000::/3'))
    """
    return tuple(
        network
        for network in networks
        if network.prefixlen < (8 if network.version == 4 else 32)
        and not any(network.subnet_of(local) for local in _LOCAL_IPV6 if network.version == 6)
    )


_LOCAL_IPV6 = (ipaddress.IPv6Network("fc00::/7"), ipaddress.IPv6Network("fe80::/10"))


def visitor(peer: str | None, forwarded_for: Iterable[str], trusted: tuple[Network, ...]) -> str:
    """The visitor of a request from ``peer`` (the connection's address) carrying the
    ``X-Forwarded-For`` headers ``forwarded_for`` (one string per header line, or one
    for them all): as the module says. A header that is malformed where it is read
    (before an address that is not a trusted proxy is found) gives the peer; a peer that
    is no address (a Unix socket's) is the empty string, one visitor for them all.

    >>> proxies = trusted_proxies("10.0.0.1, 10.0.0.2")
    >>> visitor("10.0.0.1", ["203.0.113.7, 10.0.0.2"], proxies)  # two proxies, a chain
    '203.0.113.7'
    >>> visitor("10.0.0.1", ["198.51.100.1", "203.0.113.7:4711"], proxies)  # two lines, a port
    '203.0.113.7'
    >>> visitor("10.0.0.1", ["[2001:db8::7]:443"], proxies)
    '2001:db8::/64'
    >>> visitor("10.0.0.1", ["203.0.113.7, bogus"], proxies)  # malformed: the peer
    '10.0.0.1'
    >>> visitor("10.0.0.1", ["bogus, 203.0.113.7"], proxies)  # malformed, but not read
    '203.0.113.7'
    >>> visitor("10.0.0.1", [], proxies), visitor("10.0.0.1", ["10.0.0.2"], proxies)
    ('10.0.0.1', '10.0.0.2')
    >>> visitor("::ffff:192.0.2.1", [], ()), visitor(None, [], ())
    ('192.0.2.1', '')
    """
    address = _address(peer or "")
    if address is None:
        return ""
    if not _within(address, trusted):
        return _counted(address)
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",")]
    hops = [hop for hop in hops if hop]
    if not hops:
        return _counted(address)
    furthest = address
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            return _counted(address)
        if not _within(hop_address, trusted):
            return _counted(hop_address)
        furthest = hop_address
    return _counted(furthest)  # proxies all the way: the furthest one told of


def _address(text: str) -> Address | None:
    """An address as peers and ``X-Forwarded-For`` write them: ``a.b.c.d``,
    ``a.b.c.d:port``, ``x:y::z``, ``[x:y::z]``, ``[x:y::z]:port``; None for anything
    else. An IPv4 address mapped into IPv6 is the IPv4 one."""
    if text.startswith("["):
        text, bracket, port = text[1:].partition("]")
        if not bracket or not _port(port):
            return None
    elif text.count(":") == 1:  # a.b.c.d:port
        text, _, port = text.partition(":")
        if not _port(":" + port):
            return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _port(text: str) -> bool:
    """Whether ``text`` is nothing or ``:`` and a port's digits."""
    return not text or (text[:1] == ":" and text[1:].isdecimal() and text[1:].isascii())


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def _counted(address: Address) -> str:
    """The visitor an address counts as: itself, or its /64 for IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)

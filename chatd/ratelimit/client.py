"""Who is asking: the client's address, as the per-address limits count it.

Behind a proxy (the Kubernetes ingress) every request comes from the proxy;
with CHATD_TRUSTED_PROXY_HOPS=N the client is the address N entries from the
right of X-Forwarded-For (each trusted proxy appends the one it saw; what
the client wrote itself is further left and never trusted). IPv6 clients
are counted per /64: one host usually holds a whole /64 and could otherwise
take a fresh address for every try.
"""

from __future__ import annotations

import ipaddress

UNKNOWN = "unknown"


def client_address(forwarded_for: str | None, peer: str | None, trusted_proxy_hops: int) -> str:
    """The address to count: from X-Forwarded-For (`forwarded_for`) when proxies are
    trusted and it has an entry from each, else the socket's peer."""
    address = peer or UNKNOWN
    if trusted_proxy_hops > 0 and forwarded_for:
        forwarded = [part.strip() for part in forwarded_for.split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= trusted_proxy_hops:
            address = forwarded[-trusted_proxy_hops]
    return _counted_as(address)


def _counted_as(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]  # a unix socket, or a proxy that wrote something odd
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)

"""Source allowlists: the addresses a data import key or a REST API key may be sent from.

A key leaked out of its network is still refused when it is restricted to
the addresses its exporter runs on. An allowlist is a list of IPv4 and IPv6
addresses and CIDR ranges (``10.0.0.0/8``, ``127.0.0.1``, ``fd00::/8``),
stored in the key's row as a JSON array of networks in their normal form
(``127.0.0.1/32``); ``NULL`` means any source, as keys were before
allowlists existed.

The source is the TCP peer of the request (no ``X-Forwarded-For``: a header
is the client's to write). An IPv4 client reaching a dual-stack listener is
seen as ``::ffff:a.b.c.d`` and is matched as ``a.b.c.d``.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

import orjson

from cohortsync.errors import ConfigError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_sources(values: Iterable[str]) -> list[str]:
    """The allowlist ``values`` in normal form, deduplicated, in the order given.

    A value that is neither an address nor a CIDR range (``10.0.0.1/8``, with
    host bits set, is one too) is a :class:`ConfigError` naming it.
    """
    networks: list[str] = []
    for value in values:
        text = value.strip()
        try:
            network = ipaddress.ip_network(text, strict=True)
        except ValueError as error:
            raise ConfigError(
                f"cannot read the allowed source {value!r}: {error}",
                hint="give an address (127.0.0.1, ::1) or a CIDR range without host bits "
                "(10.0.0.0/8, fd00::/8)",
            ) from None
        if str(network) not in networks:
            networks.append(str(network))
    return networks


def encode_sources(networks: list[str] | None) -> str | None:
    """The stored form: a JSON array, or None (any source) for no allowlist."""
    return None if networks is None else orjson.dumps(networks).decode()


def decode_sources(stored: str | None) -> list[str] | None:
    """The allowlist of a stored value, or None when the key accepts any source."""
    return None if stored is None else list(orjson.loads(stored))


@functools.lru_cache(maxsize=1024)
def _networks(stored: str) -> tuple[Network, ...]:
    # Parsing a stored list once per distinct value: the store is still read on every
    # request, so a changed allowlist applies to the next one.
    return tuple(ipaddress.ip_network(text) for text in orjson.loads(stored))


def allows(stored: str | None, host: str | None) -> bool:
    """Whether a key with the stored allowlist may be sent from ``host``.

    No allowlist allows every source; an allowlist allows only an address
    it holds, so a request whose peer address is unknown (``host`` None or
    not an address) is refused by it.
    """
    if stored is None:
        return True
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(stored))

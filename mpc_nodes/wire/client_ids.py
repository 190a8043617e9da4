"""MQTT client ids, bound to the certificate identity that connects with them.

A broker disconnects the holder of a client id when a new connection claims it, so whoever
may claim an id may take that session over.  The rule every broker of a cluster enforces:

- a party (certificate CN = its roster name) connects only as ``<cluster>-<name>``;
- a coordinator connects only as ``<cluster>-coord-<name>-<hex>``, one random suffix per
  process, so that several processes of one coordinator can run at once;
- so no identity can claim another's id: the suffix is hex (no '-'), so coordinator ``a``
  never matches coordinator ``a-b``'s ids, and a coordinator id equal to a party's id
  (a party named ``coord-...``) is refused.
"""

from __future__ import annotations

import re
import secrets


def node_id(cluster: str, party: str) -> str:
    """The one client id party `party` may use."""
    return f"{cluster}-{party}"


def coordinator_prefix(cluster: str, name: str) -> str:
    return f"{cluster}-coord-{name}-"


def coordinator_id(cluster: str, name: str) -> str:
    """A fresh client id for one coordinator process (64 random bits: not guessable)."""
    return coordinator_prefix(cluster, name) + secrets.token_hex(8)


def refusal(cluster: str, parties: list[str], coordinators: list[str], name: str | None,
            client_id: str) -> str | None:
    """Why certificate CN `name` may not connect as `client_id`, or None if it may."""
    if name in parties:
        wanted = node_id(cluster, name)
        return None if client_id == wanted else f"party {name} must connect as {wanted!r}"
    if name in coordinators:
        prefix = coordinator_prefix(cluster, name)
        if not re.fullmatch(re.escape(prefix) + r"[0-9a-f]{1,32}", client_id):
            return f"coordinator {name} must connect as {prefix + '<hex>'!r}"
        if client_id in {node_id(cluster, p) for p in parties}:
            return f"{client_id!r} is a party's client id"
        return None
    return f"certificate {name!r} is not in the roster"

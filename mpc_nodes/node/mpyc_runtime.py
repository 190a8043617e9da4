"""A fresh MPyC runtime per session, for party addresses and a threshold the node chose.

A daemon runs many sessions with different party sets, so every session gets a new
global MPyC runtime; how it is built and wired into MPyC (which parses ``sys.argv`` at
import and keeps one global runtime) is :mod:`protocols.mpyc_seam`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PartyAddress:
    """Where one session party listens (host, port)."""

    host: str
    port: int


def new_runtime(pid: int, addresses: list[PartyAddress], threshold: int | None = None):
    """Install and return a new global MPyC runtime for party ``pid`` among ``addresses``.

    ``threshold`` defaults to (m-1)//2, the largest that MPyC's passive security allows.
    The runtime is not started: the caller opens connections (``rt.start()`` for plain TCP,
    or :mod:`mpc_nodes.node.session` for mutually authenticated TLS).
    """
    from protocols.mpyc_seam import install_runtime  # here: the daemon imports this module,

    # and importing MPyC configures logging

    m = len(addresses)
    if not 0 <= pid < m:
        raise ValueError(f"party index {pid} outside 0..{m - 1}")
    t = (m - 1) // 2 if threshold is None else threshold
    if not 0 <= 2 * t < m:
        raise ValueError(f"threshold {t} too large for {m} parties (need 2t < m)")
    return install_runtime(pid, [(a.host, a.port) for a in addresses], t)

"""The one module that reaches inside MPyC: every private name, module global and wire detail
of MPyC that mpcnet relies on is used here and nowhere else.  MPyC is pinned (``PINNED_MPYC``,
pyproject.toml); after changing the pin, run ``pytest tests/test_mpyc_seam.py`` first: each
contract below has a test there that names what changed.

- **Import**: MPyC parses ``sys.argv`` (and configures logging from it) when ``mpyc`` and
  ``mpyc.runtime`` are first imported.  This module imports them with a clean argument list;
  protocol modules import MPyC names from here (``mpc_coro``), never from ``mpyc`` first.
- **Runtime**: MPyC keeps one global runtime, referenced from several of its modules
  (``RUNTIME_HOLDERS``).  ``install_runtime`` builds a new one per session and wires it in,
  exactly as ``mpyc.runtime.setup`` does, without reading the command line.
- **Shamir sampler**: ``np_random_split`` replaces ``thresha.np_random_split`` (installed by
  ``install_runtime``): one ``os.urandom`` call per batch instead of one per coefficient.
- **PRSS and resharing**: ``prss_share`` (``Runtime._prss_uci``) and ``reshare``
  (``Runtime._reshare``).
- **Comparison bits**: ``comparison_bits`` swaps the source of the random bits MPyC's
  comparisons draw through ``Runtime.np_random_bits``.
- **Session links**: ``PeerLink`` is MPyC's ``MessageExchanger`` with a preamble before MPyC's
  handshake and hooks for who may connect; ``SessionLinks`` is a runtime's per-peer
  connection slots (``rt.parties[i].protocol``) as a session sees them.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
import time
from typing import Protocol

import numpy as np

PINNED_MPYC = "0.11"


@contextlib.contextmanager
def _clean_argv():
    """Let MPyC's import-time argument parsing see no flag but --no-log."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "mpcnet", "--no-log"]
    try:
        yield
    finally:
        sys.argv = saved


with _clean_argv():
    import mpyc
    from mpyc import asyncoro, thresha

mpc_coro = asyncoro.mpc_coro  # the decorator of MPyC coroutines, for protocol modules

RUNTIME_HOLDERS = ("mpyc.sectypes", "mpyc.asyncoro", "mpyc.mpctools", "mpyc.seclists",
                   "mpyc.secpols", "mpyc.secgroups", "mpyc.random", "mpyc.statistics")
MPYC_NP_RANDOM_SPLIT = thresha.np_random_split  # MPyC's own sampler, kept for the fallback
GOODBYE_PC = -(2 ** 62)  # an MPyC frame label no protocol uses: "I stop, because ..."


# -- import and runtime ----------------------------------------------------------------------

def import_runtime():
    """``mpyc.runtime``, imported (once) with a clean command line: its import runs
    ``mpyc.runtime.setup()``, which reads ``sys.argv``."""
    with _clean_argv():
        return importlib.import_module("mpyc.runtime")


def install_runtime(pid: int, addresses: list[tuple[str, int]], threshold: int):
    """A new MPyC runtime for party ``pid`` among the parties at ``addresses`` (host, port),
    made the global runtime of every MPyC module that holds one, with our Shamir sampler.

    The caller has checked pid and threshold (0 <= 2·threshold < len(addresses)).  The
    runtime is not started."""
    runtime_module = import_runtime()
    options = mpyc._get_arg_parser().parse_args(["--no-log"])
    options.threshold = threshold
    options.no_prss = False
    options.no_async = len(addresses) == 1
    parties = [runtime_module.Party(i, host, port) for i, (host, port) in enumerate(addresses)]
    rt = runtime_module.Runtime(pid, parties, options)
    for name in RUNTIME_HOLDERS:
        importlib.import_module(name).runtime = rt
    runtime_module.mpc = rt
    thresha.np_random_split = np_random_split
    return rt


# -- Shamir sampler --------------------------------------------------------------------------

def np_random_split(field, s, t: int, m: int):
    """Shamir shares for parties 1..m of each secret in ``s``: an (m, len(s)) array whose row
    i-1 holds f(i) for random polynomials f of degree t with f(0) = the secret.

    MPyC 0.11 calls ``secrets.randbelow`` once per coefficient: a system call each, the largest
    single cost of resharing a few thousand products.  Here each coefficient is a random
    integer 64 bits longer than the modulus, from one ``os.urandom`` call per batch, reduced
    with the shares (statistical distance below 2^-64 from uniform).  Extension fields and
    t = 0 go to MPyC's own sampler."""
    p = field.modulus
    if not isinstance(p, int) or t == 0:
        return MPYC_NP_RANDOM_SPLIT(field, s, t, m)
    if isinstance(s, field.array):
        s = s.value
    n = len(s)
    words = (p.bit_length() + 64 + 63) // 64
    raw = np.frombuffer(os.urandom(8 * words * t * n), dtype=np.uint64).reshape(words, -1)
    coefficients = raw[0].astype(object)
    for w in raw[1:]:  # whole numbers of 64-bit words, as Python ints, in C loops
        coefficients = (coefficients << 64) | w.astype(object)
    v = np.vander(np.arange(1, m + 1, dtype=object), N=t + 1, increasing=True)
    return (v @ np.concatenate((s.reshape(1, n), coefficients.reshape(t, n)))) % p


# -- PRSS, resharing, comparison bits --------------------------------------------------------

def prss_share(rt, field, bound: int, n: int):
    """This party's shares (a ``field.array``) of n pseudorandom values, each the sum over the
    PRSS key subsets of a uniform draw from range(bound): no communication, on a fresh common
    input (``Runtime._prss_uci``), so consecutive calls draw independent values."""
    return thresha.np_pseudorandom_share(field, len(rt.parties), rt.pid, rt.prfs(bound),
                                         rt._prss_uci(), n)


def reshare(rt, x):
    """Shares of a degree-2t product (e.g. ``s * s`` of two field arrays) brought back to
    degree t, same values (``Runtime._reshare``: one round); awaitable."""
    return rt._reshare(x)


@contextlib.contextmanager
def comparison_bits(rt, draw):
    """Within the block, the secret random bits MPyC's comparisons and truncations draw over a
    prime field (``rt.np_random_bits(field, n)``) come from ``draw(field, n)`` instead; draws
    for secure types and of ±1 bits stay MPyC's."""
    mpyc_bits = rt.np_random_bits

    def np_random_bits(sftype, n, signed=False):
        if signed or not isinstance(sftype, type) or hasattr(sftype, "field"):
            return mpyc_bits(sftype, n, signed)
        return draw(sftype, n)

    rt.np_random_bits = np_random_bits
    try:
        yield
    finally:
        del rt.np_random_bits


# -- session links ---------------------------------------------------------------------------

class LinkPolicy(Protocol):
    """What a session decides about its connections (mpc_nodes.node.session implements it)."""

    preamble: bytes  # the dialler sends it first; the listener checks it in ``admit``
    closing: bool  # a connection lost while closing is a normal end, not a failure

    def accept(self, transport, pid: int | None) -> bool:
        """A connection is made: dialled to ``pid``, or (pid None) accepted from a caller;
        False aborts it."""

    def admit(self, preamble: bytes, pid: int, transport) -> bool:
        """A caller sent ``preamble`` and claims session index ``pid``; False closes it."""

    def heard_from(self, pid: int) -> None:
        """Bytes arrived from ``pid`` on an admitted link."""

    def stopped(self, pid: int, reason: str) -> None:
        """``pid`` said it stops, and why."""

    def lost(self, pid: int, exc: Exception | None, during_setup: bool) -> None:
        """The link to ``pid`` was lost before the session closed."""


class PeerLink(asyncoro.MessageExchanger):
    """One connection of a session: MPyC's exchanger, after a preamble and the policy's checks.

    MPyC's handshake: the dialler sends its 2-byte session index (and its PRSS keys), then both
    send frames (8-byte label, 4-byte size, payload).  Here the dialler sends the preamble
    first, and the listener hands MPyC the bytes only once ``policy.admit`` accepted the
    preamble and the claimed index."""

    __slots__ = ("policy", "admitted")

    def __init__(self, rt, policy: LinkPolicy, peer_pid: int | None = None):
        super().__init__(rt, peer_pid)
        self.policy = policy
        self.admitted = peer_pid is not None  # we dialled it and TLS checked its name

    def connection_made(self, transport):
        if not self.policy.accept(transport, self.peer_pid):
            transport.abort()
        elif self.peer_pid is not None:
            transport.write(self.policy.preamble)
            super().connection_made(transport)
        else:
            self.transport = transport

    def data_received(self, data):
        if self.admitted:
            if self.peer_pid is not None:
                self.policy.heard_from(self.peer_pid)
            super().data_received(data)
            said = self.buffers.pop(GOODBYE_PC, None)
            if isinstance(said, (bytes, bytearray)) and self.peer_pid is not None:
                self.policy.stopped(self.peer_pid, bytes(said).decode(errors="replace"))
            return
        self.bytes.extend(data)
        size = len(self.policy.preamble)
        if len(self.bytes) < size + 2:
            return
        preamble = bytes(self.bytes[:size])
        pid = int.from_bytes(self.bytes[size:size + 2], "little")
        if not self.policy.admit(preamble, pid, self.transport):
            self.transport.close()
            return
        del self.bytes[:size]
        self.admitted = True
        super().data_received(b"")

    def connection_lost(self, exc):
        if not self.admitted or self.peer_pid is None:
            return
        if self.policy.closing:
            self.runtime.unset_protocol(self.peer_pid)
        else:
            self.policy.lost(self.peer_pid, exc, during_setup=self.runtime.start_time is None)

    def say_goodbye(self, reason: str) -> None:
        """Tell the peer why we stop (at most 1000 bytes of it)."""
        self.send(GOODBYE_PC, reason.encode()[:1000])

    def awaits_message(self) -> bool:
        """Whether the protocol waits for a message from this peer."""
        return any(isinstance(b, asyncio.Future) and not b.done() for b in self.buffers.values())


class SessionLinks:
    """A runtime's links to its session peers (MPyC keeps them in ``rt.parties[i].protocol``;
    the own slot holds a future that completes once every peer is linked)."""

    def __init__(self, rt, policy: LinkPolicy):
        self.rt = rt
        self.policy = policy

    def open(self) -> asyncio.Future:
        """Empty every slot, as ``Runtime.start`` does; the future completes when all are linked."""
        for peer in self.rt.parties:
            peer.protocol = asyncio.Future() if peer.pid == self.rt.pid else None
        return self.rt.parties[self.rt.pid].protocol

    def listener(self) -> PeerLink:
        """A link for a caller (asyncio protocol factory of the server)."""
        return PeerLink(self.rt, self.policy)

    def dialler(self, pid: int) -> PeerLink:
        """A link for dialling peer ``pid``."""
        return PeerLink(self.rt, self.policy, pid)

    def link(self, pid: int) -> PeerLink | None:
        """The link to peer ``pid``, once it is set up."""
        return None if pid == self.rt.pid else self.rt.parties[pid].protocol

    def peers(self) -> list[int]:
        return [p.pid for p in self.rt.parties if p.pid != self.rt.pid]

    def goodbye(self, reason: str) -> None:
        """Tell every admitted peer why we stop (best effort)."""
        for pid in self.peers():
            link = self.link(pid)
            if isinstance(link, PeerLink) and link.admitted:
                try:
                    link.say_goodbye(reason)
                except Exception:  # noqa: BLE001 - a closed transport: nothing to tell
                    pass

    def mark_started(self) -> None:
        """Every peer is linked and the protocol starts (MPyC's ``Runtime.start_time``)."""
        self.rt.start_time = time.time()

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
  (``Runtime._reshare``).  PRSS draws use MPyC's keys (``Runtime._prss_keys``) and
  weights (``thresha._f_S_i``) with a vectorised SHAKE-128 stream (``fast_prss_share``,
  ``prss_pieces``); ``fast_prss_randoms`` puts it behind ``Runtime._np_randoms``.
- **PRSS key agreement**: MPyC's generator of a subset's key sends it to the other members
  in the handshake (``Runtime._prss_keys_to_peer``), so a corrupted one can send each a
  different key; ``agree_prss_keys`` compares digests of the shared keys in one round, once
  per runtime, before PRSS values are relied on under security: malicious.
- **Unpickling**: MPyC sends arrays and ``transfer``'s objects as pickles and loads what a
  peer sent with ``pickle.loads`` (``mpyc.runtime.pickle``): a peer could make it run any
  code.  ``install_runtime`` gives ``mpyc.runtime`` ``SafePickle``, whose ``loads`` builds
  only plain data and numpy arrays and refuses every other class.
- **Raw rounds**: ``exchange`` sends each peer bytes in one round labelled by MPyC's program
  counter (``Runtime._send_message``, ``_receive_message``), for ``protocols.compare3``.
- **Comparison bits**: ``comparison_bits`` swaps the source of the random bits MPyC's
  comparisons draw through ``Runtime.np_random_bits``.
- **Session links**: ``PeerLink`` is MPyC's ``MessageExchanger`` with a preamble before MPyC's
  handshake and hooks for who may connect; ``SessionLinks`` is a runtime's per-peer
  connection slots (``rt.parties[i].protocol``) as a session sees them.  A session may end
  its links without closing them (``SessionLinks.finish``: an END frame each way after the
  protocol's last message, MPyC's ``_pc_level`` to know it went out), so that the next
  session can reuse the connection.
- **Outgoing messages** (tests only): ``tap_sends`` passes what a runtime sends to each peer
  (``Runtime._send_message``) through a function, for a party that deviates inside a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import hashlib
import importlib
import io
import math
import os
import pickle
import struct
import sys
import time
from typing import Protocol

import numpy as np

from protocols.active import Deviation

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
END_PC = GOODBYE_PC + 1  # another: "the session is over; what follows is the next one's"
_FRAME = struct.Struct("<qI")  # MPyC's frame header: label, payload size


# -- import and runtime ----------------------------------------------------------------------

def import_runtime():
    """``mpyc.runtime``, imported (once) with a clean command line: its import runs
    ``mpyc.runtime.setup()``, which reads ``sys.argv``."""
    with _clean_argv():
        return importlib.import_module("mpyc.runtime")


@functools.cache
def _default_options():
    """MPyC's default options (building its argument parser took ~1 ms per session)."""
    return mpyc._get_arg_parser().parse_args(["--no-log"])


def install_runtime(pid: int, addresses: list[tuple[str, int]], threshold: int):
    """A new MPyC runtime for party ``pid`` among the parties at ``addresses`` (host, port),
    made the global runtime of every MPyC module that holds one, with our Shamir sampler.

    The caller has checked pid and threshold (0 <= 2·threshold < len(addresses)).  The
    runtime is not started."""
    runtime_module = import_runtime()
    options = copy.copy(_default_options())
    options.threshold = threshold
    options.no_prss = False
    options.no_async = len(addresses) == 1
    parties = [runtime_module.Party(i, host, port) for i, (host, port) in enumerate(addresses)]
    rt = runtime_module.Runtime(pid, parties, options)
    for name in RUNTIME_HOLDERS:
        importlib.import_module(name).runtime = rt
    runtime_module.mpc = rt
    runtime_module.pickle = SafePickle
    thresha.np_random_split = np_random_split
    return rt


# -- unpickling what peers send ---------------------------------------------------------------

class _DataOnly(pickle.Unpickler):
    """An unpickler for peers' messages: builtin data, and numpy arrays and scalars (field
    values are arrays of ints, or int64); any other global is refused before it is looked up."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"a peer sent a pickle of {module}.{name}: only data"
                                         f" and numpy arrays are accepted")
        return super().find_class(module, name)


class SafePickle:
    """``mpyc.runtime``'s ``pickle``: the standard ``dumps``, a ``loads`` limited to data."""

    dumps = staticmethod(pickle.dumps)

    @staticmethod
    def loads(data: bytes):
        return _DataOnly(io.BytesIO(data)).load()


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
    coefficients = coefficients.reshape(t, n)
    shares = np.empty((m, n), dtype=object)
    for x in range(1, m + 1):  # Horner at each small point: no object matrix product
        acc = coefficients[t - 1]
        for k in range(t - 2, -1, -1):
            acc = acc * x + coefficients[k]
        shares[x - 1] = (acc * x + s) % p
    return shares


# -- PRSS, resharing, comparison bits --------------------------------------------------------

def prss_share(rt, field, bound: int, n: int):
    """This party's shares (a ``field.array``) of n pseudorandom values, each the sum over the
    PRSS key subsets of a uniform draw from range(bound): no communication, on a fresh common
    input (``Runtime._prss_uci``), so consecutive calls draw independent values.  The draws
    come from MPyC's PRSS keys through ``fast_prss_share`` (below), not MPyC's slower PRF."""
    return fast_prss_share(rt, field, bound, n)


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

    __slots__ = ("policy", "admitted", "ended", "after")

    def __init__(self, rt, policy: LinkPolicy, peer_pid: int | None = None):
        super().__init__(rt, peer_pid)
        self.policy = policy
        self.admitted = peer_pid is not None  # we dialled it and TLS checked its name
        self.ended = asyncio.get_running_loop().create_future()  # the peer's END came
        self.after = bytearray()  # bytes after the peer's END: the next session's

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
            if self.ended.done():
                self.after.extend(data)
                return
            if self.peer_pid is not None:
                self.policy.heard_from(self.peer_pid)
            self.bytes.extend(data)
            self._split_at_end()
            super().data_received(b"")
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
        self.data_received(b"")

    def _split_at_end(self) -> None:
        """Keep MPyC from reading past the peer's END frame: what follows it belongs to the
        next session on this connection."""
        at, data, rt = 0, self.bytes, self.runtime
        if self.peer_pid is None:  # MPyC reads the caller's index and PRSS keys first
            if len(data) < 2:
                return
            at = 2 if rt.options.no_prss else \
                2 + rt._prss_keys_from_peer(int.from_bytes(data[:2], "little"))
        while len(data) - at >= _FRAME.size:
            pc, size = _FRAME.unpack_from(data, at)
            if pc == END_PC:
                self.after.extend(data[at + _FRAME.size + size:])
                del data[at:]
                self.ended.set_result(None)
                return
            at += _FRAME.size + size

    def connection_lost(self, exc):
        if not self.ended.done():  # a session ending its links stops waiting for this one
            self.ended.set_exception(ConnectionError("the link closed before the peer's END"))
            self.ended.exception()  # only such a session awaits it: not an unretrieved error
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

    def detach(self) -> tuple:
        """After the session ended on this link (``SessionLinks.finish``): the connection,
        and the bytes that came after the peer's END."""
        return self.transport, bytes(self.after)


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

    async def finish(self) -> None:
        """End the session on every link without closing it: once the protocol's last
        messages went out (as ``Runtime.shutdown`` waits for them), send END and wait for
        every peer's END; after that no byte of this session is on its way."""
        rt = self.rt
        while rt._pc_level > rt._program_counter[1]:
            await asyncio.sleep(0)
        # a fresh own slot, as Runtime.shutdown makes: MPyC completes it once every link is
        # unset, which a link lost now does
        rt.parties[rt.pid].protocol = asyncio.get_running_loop().create_future()
        links = [self.link(pid) for pid in self.peers()]
        for link in links:
            link.send(END_PC, b"")
        await asyncio.gather(*(link.ended for link in links))


# -- vectorised PRSS -------------------------------------------------------------------------
# MPyC's PRF (``thresha.PRF``) turns each output into a Python int with ``int.from_bytes`` in
# a generator: about half of a three-party pricing session's CPU.  The streams below use the
# same PRSS keys and the same fresh common inputs, one SHAKE-128 call per key and draw, and
# numpy to cut the output into integers.

_PRSS_TAG = b"mpcnet/prss/v1\x00"


def _stream(key: bytes, uci: bytes, bits: int, n: int) -> np.ndarray:
    """n integers uniform in range(2^bits) from SHAKE-128(tag, key, uci): an int64 array for
    bits <= 62 (one byte per value up to 8 bits), else an object array."""
    xof = hashlib.shake_128(_PRSS_TAG + key + uci)
    if bits <= 8:
        return (np.frombuffer(xof.digest(n), dtype=np.uint8) & ((1 << bits) - 1)).astype(np.int64)
    words = -(-bits // 64)
    raw = np.frombuffer(xof.digest(8 * words * n), dtype=np.uint64).reshape(words, n)
    top = np.uint64((1 << (bits - 64 * (words - 1))) - 1)
    if words == 1 and bits <= 62:
        return (raw[0] & top).astype(np.int64)
    value = (raw[0] & top).astype(object)
    for w in raw[1:]:
        value = (value << 64) | w.astype(object)
    return value


def prss_pieces(rt, bits: int, n: int) -> dict[tuple, np.ndarray]:
    """For each PRSS key subset S this party holds: n pseudorandom integers uniform in
    range(2^bits), all subsets on one fresh common input as PRSS draws.  A party holds the
    keys of the subsets it belongs to; times ``prss_weight`` they are its Shamir shares of
    S's values (the parties outside S hold share 0)."""
    uci = rt._prss_uci()
    return {subset: _stream(key, uci, bits, n) for subset, key in rt._prss_keys.items()}


def prss_weight(rt, field, subset: tuple) -> int:
    """f_S(pid + 1) in ``field``: the degree-t polynomial that is 1 at 0 and 0 at every party
    outside S (``thresha._f_S_i``), as an integer."""
    return int(thresha._f_S_i(field, len(rt.parties), rt.pid, subset))


def fast_prss_share(rt, field, bound: int, n: int):
    """This party's shares (a ``field.array``) of n values, each the sum over the PRSS key
    subsets of a pseudorandom draw uniform in range(bound): as ``prss_share``, vectorised.
    A bound that is not a power of two is drawn 64 bits longer and reduced (statistical
    distance below 2^-64 from uniform)."""
    exact = bound & (bound - 1) == 0
    bits = bound.bit_length() - 1 if exact else bound.bit_length() + 64
    total = 0
    for subset, values in prss_pieces(rt, bits, n).items():
        values = values.astype(object) if exact else values.astype(object) % bound
        total = total + values * prss_weight(rt, field, subset)
    return field.array(total if n else np.zeros(0, dtype=object))


@contextlib.contextmanager
def fast_prss_randoms(rt):
    """Within the block, the PRSS random values MPyC's comparisons and zero tests draw
    (``Runtime._np_randoms``) come from ``fast_prss_share``, with MPyC's bounds: the field's
    order, or ``bound`` split over the C(m, t) subsets and rounded down to a power of two.
    Sessions without PRSS keep MPyC's."""
    if rt.options.no_prss:
        yield
        return
    m, t = len(rt.parties), rt.threshold

    def np_randoms(sftype, n, bound=None):
        secure = issubclass(sftype, rt.SecureObject)
        field = sftype.field if secure else sftype
        if bound is None:
            bound = field.order
        else:
            bound = 1 << max(0, (bound // math.comb(m, t)).bit_length() - 1)
        x = fast_prss_share(rt, field, bound, n)
        return sftype.array(x) if secure else x

    rt._np_randoms = np_randoms
    try:
        yield
    finally:
        del rt._np_randoms


@asyncoro.mpc_coro
async def exchange(rt, outgoing: list):
    """Send ``outgoing[j]`` (bytes) to every other party j and return what each sent us (our
    own slot None), in one round labelled like any MPyC step (``Runtime._send_message``):
    for protocols that carry their own arrays, such as ``protocols.compare3``'s small field."""
    await rt.returnType(asyncio.Future)
    for pid, data in enumerate(outgoing):
        if pid != rt.pid:
            rt._send_message(pid, data)
    received = [None if pid == rt.pid else rt._receive_message(pid)
                for pid in range(len(rt.parties))]
    return await rt.gather(received)


# -- PRSS key agreement ----------------------------------------------------------------------
# MPyC's generator of a subset's PRSS key (its first member) sends the key to each other member
# in the handshake (``Runtime._prss_keys_to_peer``): a corrupted generator can send different
# keys to different members, and no opening sees it (the t+1 honest shares of a PRSS value
# then lie on *some* degree-t polynomial, whose value is no longer a bounded sum).

_PRSS_DIGEST_TAG = b"mpcnet/prss-key-digest/v1\x00"
_PRSS_AGREED = "_mpcnet_prss_agreed"  # on a runtime: its agreement round (digests, replies)
_DIGEST = 32


def _prss_key_digest(m: int, t: int, subset: tuple, key) -> bytes:
    """SHA-256 of one subset's PRSS key, bound to m, t and the subset."""
    bound = b"".join(i.to_bytes(2, "big") for i in (m, t, *subset))
    return hashlib.sha256(_PRSS_DIGEST_TAG + bound + bytes(key)).digest()


def _shared_subsets(rt, j: int) -> list[tuple]:
    """The PRSS key subsets holding both this party and party j, sorted (the keys arrive in
    any order)."""
    return sorted(s for s in rt._prss_keys if j in s)


async def agree_prss_keys(rt, names: list[str] | None = None) -> None:
    """Check that every other party holds the same PRSS key as this party for each subset
    they share: one round in which each party sends each peer a digest of every key they have
    in common; ``protocols.active.Deviation`` if one differs, naming nobody (the generator may
    have sent two keys, or the peer may report a false digest), or if a reply is malformed,
    naming its sender.  Under security: malicious, before PRSS values are used (their bound).

    Once per runtime (keys are made when it is built, one per session): later calls await the
    same round.  No round where every subset has at most two members (m - t <= 2, e.g. three
    parties): the generator's one receiver has no other receiver to disagree with."""
    m, t = len(rt.parties), rt.threshold
    if rt.options.no_prss or m - t <= 2:
        return
    if (agreed := getattr(rt, _PRSS_AGREED, None)) is None:
        mine = {s: _prss_key_digest(m, t, s, key) for s, key in rt._prss_keys.items()}
        agreed = mine, exchange(rt, [b"" if j == rt.pid else
                                     b"".join(mine[s] for s in _shared_subsets(rt, j))
                                     for j in range(m)])
        setattr(rt, _PRSS_AGREED, agreed)
    mine, replies = agreed
    _compare_key_digests(rt, mine, await replies,
                         names or [f"session party {j}" for j in range(m)])


def _compare_key_digests(rt, mine: dict, replies: list, names: list[str]) -> None:
    """Deviation unless every peer's digests equal this party's, subset by subset."""
    differ = []
    for j, reply in enumerate(replies):
        if j == rt.pid:
            continue
        subsets = _shared_subsets(rt, j)
        if reply is None or len(reply) != _DIGEST * len(subsets):
            raise Deviation(f"{names[j]} sent {0 if reply is None else len(reply)} bytes where"
                            f" {len(subsets)} PRSS key digests ({_DIGEST * len(subsets)} bytes)"
                            f" were due", [j])
        differ += [(j, s) for k, s in enumerate(subsets)
                   if reply[_DIGEST * k:_DIGEST * (k + 1)] != mine[s]]
    if differ:
        j, s = differ[0]
        why = f"{names[j]}, which made it, sent this party another key than it holds" \
            if j == s[0] else f"either {names[s[0]]}, which made it, sent its members" \
            f" different keys, or {names[j]} reports a false digest"
        raise Deviation(f"the PRSS key of parties {', '.join(names[i] for i in s)} differs"
                        f" between this party and {names[j]} ({len(differ)} digest(s) differ):"
                        f" {why}; PRSS values would be unbounded, so the session stops")


# -- field arrays ----------------------------------------------------------------------------
# MPyC 0.11 builds every finite-field array with ``FiniteFieldArray.__init__``, which parses
# NumPy's version string (``numpy.lib.NumpyVersion``, regular expressions) on each call: about
# 8 % of a pricing party's CPU.  The same constructor with the version compared once replaces
# it when this module is imported; tests/test_mpyc_seam.py checks both give the same arrays.

finfields = importlib.import_module("mpyc.finfields")  # imported by thresha already
MPYC_FIELD_ARRAY_INIT = finfields.FiniteFieldArray.__init__
_NUMPY2 = np.lib.NumpyVersion(np.__version__) >= "2.0.0b1"


def _field_array_init(self, value, check=True, copy=False):
    if _NUMPY2 and copy is False:
        copy = None
    value = np.array(value, dtype=object, copy=copy)
    if check:
        value %= self.field.modulus  # in place: keeps the shape, as MPyC's
    self.value = value


finfields.FiniteFieldArray.__init__ = _field_array_init


def prss_zero_share(rt, field, n: int):
    """This party's shares (a ``field.array``) of n pseudorandom sharings of 0 of degree 2t:
    Σ_S Σ_{j=1..t} z_{S,j}·x^j·f_S(x) at x = pid + 1 (``thresha.np_pseudorandom_share_0``,
    vectorised), each z drawn 64 bits longer than the modulus.  Added to a degree-2t sharing
    before it is opened, it leaves nothing of the sharing but its value to any t parties."""
    p, t, x = field.modulus, rt.threshold, rt.pid + 1
    total = 0
    for subset, values in prss_pieces(rt, p.bit_length() + 64, n * t).items():
        z = values.reshape(t, n)
        total = total + sum(z[j] * pow(x, j + 1, p) for j in range(t)) \
            * prss_weight(rt, field, subset)
    return field.array(total if t else np.zeros(n, dtype=object))


# -- outgoing messages (tests) ---------------------------------------------------------------

def tap_sends(rt, fn) -> None:
    """Pass every message ``rt`` sends to a peer through ``fn(peer_pid, payload) -> payload``
    (``Runtime._send_message``: input shares, reshares, opened shares, transfers and
    ``exchange`` rounds, each a bytes payload under MPyC's program counter); whatever ``fn``
    returns is sent instead.  For the adversarial tests only: a party that deviates inside a
    session (tests/adversarial/deviating_engine.py).  The session's own frames (preamble,
    GOODBYE, END) do not pass through it."""
    send = rt._send_message

    def tapped(peer_pid, data):
        return send(peer_pid, fn(peer_pid, data))

    rt._send_message = tapped

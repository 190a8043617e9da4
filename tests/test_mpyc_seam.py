"""Contract tests of protocols.mpyc_seam: what mpcnet assumes about MPyC's internals.

Each test names the MPyC detail it pins; after changing the MPyC version, run this file first.
A failure says which assumption broke, so the seam (and only the seam) can be adapted.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import struct
import subprocess
import sys
from itertools import combinations
from math import comb

import numpy as np
import pytest

from protocols import active, mpyc_seam
from protocols.shamir import interpolate
from tests.mpc_harness import ROOT, run_parties

mpyc = mpyc_seam.mpyc  # imported by the seam, with a clean command line
mpyc_runtime = mpyc_seam.import_runtime()
ADDRESSES = [("127.0.0.1", 0)] * 3


def test_mpyc_is_the_pinned_version():
    assert mpyc.__version__ == mpyc_seam.PINNED_MPYC, (
        f"MPyC {mpyc.__version__} is installed, the seam was written against"
        f" {mpyc_seam.PINNED_MPYC}: run this file and adapt protocols/mpyc_seam.py")


# -- import-time command-line parsing ------------------------------------------------------

def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_mpyc_still_reads_the_command_line_at_import():
    """If this fails, MPyC stopped parsing sys.argv at import: _clean_argv can go."""
    done = _python("import sys; sys.argv = ['x', '-V']; import mpyc.runtime; print('imported')")
    assert "imported" not in done.stdout and f"MPyC {mpyc.__version__}" in done.stdout, (
        f"MPyC no longer acts on -V at import: {done.stdout!r} {done.stderr[-500:]!r}")


def test_the_seam_imports_mpyc_without_reading_the_command_line():
    done = _python("import sys; sys.argv = ['x', '-V', '-M', '3']\n"
                   "from protocols import mpyc_seam\n"
                   "mpyc_seam.import_runtime()\n"
                   "assert sys.argv == ['x', '-V', '-M', '3'], sys.argv\n"
                   "print('imported')")
    assert done.returncode == 0 and "imported" in done.stdout, done.stderr[-2000:]


def test_the_argument_parser_gives_the_options_the_seam_sets():
    assert callable(getattr(mpyc, "_get_arg_parser", None)), "mpyc._get_arg_parser is gone"
    options = mpyc._get_arg_parser().parse_args(["--no-log"])
    for name in ("threshold", "no_prss", "no_async", "no_log", "sec_param", "bit_length",
                 "mix32_64bit"):
        assert hasattr(options, name), f"MPyC's options have no {name!r} any more"
    assert options.no_log and not options.mix32_64bit


# -- the global runtime ---------------------------------------------------------------------

def test_setup_wires_exactly_the_modules_the_seam_wires():
    """mpyc.runtime.setup() assigns its runtime to module globals; install_runtime must
    assign it to the same modules."""
    wired = re.findall(r"^\s*([\w.]+)\.runtime = rt$", inspect.getsource(mpyc_runtime.setup),
                       re.M)
    assert {w if w.startswith("mpyc.") else f"mpyc.{w}" for w in wired} == \
        set(mpyc_seam.RUNTIME_HOLDERS), f"MPyC's setup() now wires {wired}"
    assert "mpc = setup()" in inspect.getsource(mpyc_runtime)


def test_runtime_and_party_constructors():
    assert list(inspect.signature(mpyc_runtime.Runtime).parameters) == ["pid", "parties",
                                                                       "options"]
    assert [f for f in ("pid", "host", "port")
            if f not in mpyc_runtime.Party.__dataclass_fields__] == []


async def test_install_runtime_makes_the_new_runtime_global_with_our_sampler():
    rt = mpyc_seam.install_runtime(1, ADDRESSES, 1)
    assert (rt.pid, len(rt.parties), rt.threshold) == (1, 3, 1)
    assert not rt.options.no_prss and not rt.options.no_async and rt.start_time is None
    for name in mpyc_seam.RUNTIME_HOLDERS:
        module = sys.modules[name]
        assert module.runtime is rt, f"{name}.runtime is not the installed runtime"
    assert mpyc_runtime.mpc is rt
    assert mpyc_seam.thresha.np_random_split is mpyc_seam.np_random_split


# -- the Shamir sampler we replace ---------------------------------------------------------

def test_np_random_split_has_the_signature_we_replace():
    ours = inspect.signature(mpyc_seam.np_random_split).parameters
    theirs = inspect.signature(mpyc_seam.MPYC_NP_RANDOM_SPLIT).parameters
    assert list(ours) == list(theirs) == ["field", "s", "t", "m"], f"MPyC's is now {theirs}"
    assert mpyc_seam.MPYC_NP_RANDOM_SPLIT.__module__ == "mpyc.thresha"


@pytest.mark.parametrize("method", ["_reshare", "_distribute"])
def test_mpyc_looks_the_sampler_up_when_it_shares(method):
    """Replacing thresha.np_random_split takes effect only because MPyC reads the module
    attribute at each call."""
    source = inspect.getsource(getattr(mpyc_runtime.Runtime, method))
    assert "thresha.np_random_split" in source, f"Runtime.{method} no longer calls it"


# -- PRSS, resharing and comparison bits ----------------------------------------------------

async def test_prss_uci_is_a_fresh_eight_byte_counter():
    rt = mpyc_seam.install_runtime(0, ADDRESSES, 1)
    first, second = rt._prss_uci(), rt._prss_uci()
    assert isinstance(first, bytes) and len(first) == len(second) == 8 and first != second
    assert int.from_bytes(second, "little", signed=True) == \
        int.from_bytes(first, "little", signed=True) + 1


async def prss_and_reshare(rt, n: int) -> dict:
    """(Run in each party.) Two PRSS sharings, the local product of the first with itself and
    its resharing: this party's raw shares of each, for the test to check independently."""
    field = rt.SecInt(64).field
    bound = 1 << 16
    s = mpyc_seam.prss_share(rt, field, bound, n)
    again = mpyc_seam.prss_share(rt, field, bound, n)
    reshared = await mpyc_seam.reshare(rt, s * s)
    return {"modulus": field.modulus, "t": rt.threshold, "point": rt.pid + 1,
            "bound": comb(len(rt.parties), rt.threshold) * bound,
            "s": [int(v) for v in s.value], "again": [int(v) for v in again.value],
            "product": [int(v) for v in (s * s).value],
            "reshared": [int(v) for v in reshared.value]}


def _opened(parties: list[dict], key: str, degree: int) -> list[int]:
    """The values the parties' shares of `key` open to, after checking that every share lies
    on one polynomial of this degree."""
    p, xs = parties[0]["modulus"], [r["point"] for r in parties]
    base = [r[key] for r in parties[:degree + 1]]
    for r in parties[degree + 1:]:
        assert interpolate(xs[:degree + 1], base, r["point"], p) == r[key], \
            f"the shares of {key} are not on one degree-{degree} polynomial"
    return interpolate(xs[:degree + 1], base, 0, p)


@pytest.mark.heavy
def test_prss_shares_and_reshare_among_three_parties():
    parties = run_parties("tests.test_mpyc_seam:prss_and_reshare", [[16]] * 3)
    p, t = parties[0]["modulus"], parties[0]["t"]
    values = _opened(parties, "s", t)
    assert all(0 <= v < parties[0]["bound"] for v in values)
    assert _opened(parties, "again", t) != values, "two PRSS draws gave the same values"
    squares = [v * v % p for v in values]
    assert _opened(parties, "product", 2 * t) == squares
    assert _opened(parties, "reshared", t) == squares, "resharing changed the values"


async def prss_zeros(rt, n: int) -> dict:
    """(Run in each party.) This party's shares of n PRSS sharings of zero of degree 2t."""
    field = rt.SecInt(64).field
    zero = mpyc_seam.prss_zero_share(rt, field, n)
    return {"modulus": field.modulus, "point": rt.pid + 1, "t": rt.threshold,
            "zero": [int(v) for v in zero.value]}


@pytest.mark.heavy
@pytest.mark.parametrize("parties", [3, 5])
def test_prss_zero_sharings_open_to_zero_at_degree_2t(parties):
    results = run_parties("tests.test_mpyc_seam:prss_zeros", [[8]] * parties)
    degree = 2 * results[0]["t"]
    assert _opened(results, "zero", degree) == [0] * 8
    assert any(r["zero"] != [0] * 8 for r in results), "the zero sharings are all zero"


# -- PRSS key agreement ---------------------------------------------------------------------

def test_each_prss_key_is_made_by_its_subsets_first_member_and_sent_to_the_others():
    """agree_prss_keys exists because of this: the first member of each subset of m - t
    parties makes its key and sends it to each other member in the handshake."""
    for pid in range(5):
        rt = mpyc_seam.install_runtime(pid, [("127.0.0.1", 0)] * 5, 2)
        made = {s for s in combinations(range(5), 3) if s[0] == pid}
        assert set(rt._prss_keys) == made, "MPyC now makes other PRSS keys at a party"
        assert all(isinstance(k, bytes) and len(k) == 16 for k in rt._prss_keys.values())
        for peer in range(pid + 1, 5):
            assert rt._prss_keys_to_peer(peer) == [rt._prss_keys[s] for s in sorted(made)
                                                   if peer in s]
            assert rt._prss_keys_from_peer(peer) == 16 * sum(1 for s in combinations(
                range(5), 3) if s[0] == peer and pid in s)


async def prss_key_agreement(rt, swapped: list | None = None, short: int | None = None) -> dict:
    """(Run in each party.) agree_prss_keys twice; before it, party swapped[0] holds another
    key of subset swapped[1] (as if the subset's first member had sent it one), and party
    ``short`` sends each peer one byte less in the first.  What each call concluded, and how
    many messages this party sent in each."""
    if swapped and rt.pid == swapped[0]:
        rt._prss_keys[tuple(swapped[1])] = bytes(16)
    sent = [0]

    def count(peer, data):
        sent[-1] += 1
        return data[:-1] if rt.pid == short and len(sent) == 1 else data
    mpyc_seam.tap_sends(rt, count)
    outcomes = []
    for _ in range(2):
        try:
            await mpyc_seam.agree_prss_keys(rt)
            outcomes.append("agreed")
        except active.Deviation as exc:
            outcomes.append({"deviation": str(exc), "culprits": list(exc.culprits)})
        sent.append(0)
    return {"outcomes": outcomes, "sent": sent[:2]}


@pytest.mark.heavy
def test_parties_agreeing_on_their_prss_keys_pass_in_one_round_once_per_runtime():
    for result in run_parties("tests.test_mpyc_seam:prss_key_agreement", [[]] * 5):
        assert result == {"outcomes": ["agreed", "agreed"], "sent": [4, 0]}


@pytest.mark.heavy
def test_three_parties_need_no_round():
    """Each subset of two parties has one receiver: nobody to disagree with."""
    for result in run_parties("tests.test_mpyc_seam:prss_key_agreement", [[]] * 3):
        assert result == {"outcomes": ["agreed", "agreed"], "sent": [0, 0]}


@pytest.mark.heavy
def test_a_prss_key_that_differs_between_two_members_stops_every_member_naming_nobody():
    results = run_parties("tests.test_mpyc_seam:prss_key_agreement", [[[2, [0, 1, 2]]]] * 5)
    for pid in (0, 1, 2):  # the members of (0, 1, 2); 0 made the key and holds it as 1 does
        assert results[pid]["sent"] == [4, 0]
        first, again = results[pid]["outcomes"]
        assert first == again and first["culprits"] == [], results[pid]
        assert "PRSS key of parties session party 0, session party 1, session party 2" \
            " differs" in first["deviation"]
    assert "between this party and session party 2 (1 digest(s) differ): either session" \
        " party 0, which made it, sent its members different keys, or session party 2 reports" \
        " a false digest" in results[1]["outcomes"][0]["deviation"]
    assert "between this party and session party 0 (2 digest(s) differ): session party 0," \
        " which made it, sent this party another key than it holds" \
        in results[2]["outcomes"][0]["deviation"]
    for pid in (3, 4):  # they hold no key of (0, 1, 2)
        assert results[pid]["outcomes"] == ["agreed", "agreed"]


@pytest.mark.heavy
def test_a_malformed_digest_message_names_its_sender():
    results = run_parties("tests.test_mpyc_seam:prss_key_agreement", [[None, 4]] * 5)
    for result in results[:4]:
        assert result["outcomes"][0]["culprits"] == [4]
        assert "session party 4 sent 95 bytes where 3 PRSS key digests (96 bytes) were due" \
            == result["outcomes"][0]["deviation"]
    assert results[4]["outcomes"] == ["agreed", "agreed"]


def test_field_arrays_are_built_as_mpyc_builds_them():
    field = mpyc_seam.install_runtime(0, ADDRESSES[:1], 0).SecInt(32).field
    assert "NumpyVersion" in inspect.getsource(mpyc_seam.MPYC_FIELD_ARRAY_INIT), \
        "MPyC's FiniteFieldArray.__init__ changed: check _field_array_init against it"
    for value, check, copy in [([5, -1, field.modulus + 3], True, False),
                               (np.array([[2, field.modulus]], dtype=object), True, True),
                               ([1, 2], False, False)]:
        ours, theirs = field.array.__new__(field.array), field.array.__new__(field.array)
        mpyc_seam._field_array_init(ours, value, check, copy)
        mpyc_seam.MPYC_FIELD_ARRAY_INIT(theirs, value, check, copy)
        assert ours.value.shape == theirs.value.shape
        assert ours.value.tolist() == theirs.value.tolist()


async def exchange_round(rt) -> list:
    """(Run in each party.) Two raw rounds: each party sends every peer "from-to" bytes."""
    out = []
    for label in ("a", "b"):
        sent = [f"{label}{rt.pid}-{j}".encode() for j in range(len(rt.parties))]
        got = await mpyc_seam.exchange(rt, sent)
        out.append([None if g is None else bytes(g).decode() for g in got])
    return out


@pytest.mark.heavy
def test_exchange_delivers_each_peer_its_own_bytes_per_round():
    parties = run_parties("tests.test_mpyc_seam:exchange_round", [[]] * 3)
    for pid, rounds in enumerate(parties):
        for label, got in zip("ab", rounds):
            assert got == [None if j == pid else f"{label}{j}-{pid}" for j in range(3)]


async def test_comparisons_draw_their_bits_through_np_random_bits():
    rt = mpyc_seam.install_runtime(0, ADDRESSES[:1], 0)
    await rt.start()
    secint = rt.SecInt(16)
    mpyc_bits, fields = rt.np_random_bits, []

    def draw(field, n):
        fields.append(field)
        return mpyc_bits(field, n)

    with mpyc_seam.comparison_bits(rt, draw):
        signs = await rt.output(rt.np_sgn(secint.array(np.array([-5, 0, 7])), l=8, LT=True))
    assert fields and all(f is secint.field for f in fields), \
        "MPyC's comparisons no longer draw their bits with rt.np_random_bits(field, n)"
    assert [int(v) for v in signs] == [1, 0, 0]
    assert "np_random_bits" not in vars(rt), "the override outlived its block"
    await rt.shutdown()


# -- session links over MPyC's MessageExchanger ---------------------------------------------

class FakeTransport:
    def __init__(self):
        self.written = bytearray()
        self.closed = self.aborted = False

    def write(self, data):
        self.written.extend(data)

    def writelines(self, chunks):
        for chunk in chunks:
            self.write(chunk)

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True

    def get_extra_info(self, name):
        return None


class RecordingPolicy:
    def __init__(self, admit=True):
        self.preamble, self.closing, self.allow, self.events = b"S" * 32, False, admit, []

    def accept(self, transport, pid):
        self.events.append(("accept", pid))
        return True

    def admit(self, preamble, pid, transport):
        self.events.append(("admit", preamble, pid))
        return self.allow

    def heard_from(self, pid):
        self.events.append(("heard", pid))

    def stopped(self, pid, reason):
        self.events.append(("stopped", pid, reason))

    def lost(self, pid, exc, during_setup):
        self.events.append(("lost", pid, during_setup))


def test_message_exchanger_has_the_members_the_link_uses():
    exchanger = mpyc_seam.asyncoro.MessageExchanger
    assert list(inspect.signature(exchanger).parameters) == ["rt", "peer_pid"]
    assert {"runtime", "peer_pid", "bytes", "buffers", "transport"} <= set(exchanger.__slots__)
    for name in ("connection_made", "data_received", "connection_lost", "send", "receive"):
        assert callable(getattr(exchanger, name, None)), f"MessageExchanger.{name} is gone"
    for name in ("set_protocol", "unset_protocol"):
        assert callable(getattr(mpyc_runtime.Runtime, name, None)), f"Runtime.{name} is gone"


async def test_links_pass_a_preamble_then_mpycs_handshake_frames_and_goodbye():
    """Party 0 dials party 1: the preamble, MPyC's 2-byte index and PRSS keys, then frames
    (8-byte label, 4-byte size, payload); each side ends up linked as MPyC sees it."""
    rt0 = mpyc_seam.install_runtime(0, ADDRESSES[:2], 0)
    rt1 = mpyc_seam.install_runtime(1, ADDRESSES[:2], 0)
    policy0, policy1 = RecordingPolicy(), RecordingPolicy()
    links0, links1 = mpyc_seam.SessionLinks(rt0, policy0), mpyc_seam.SessionLinks(rt1, policy1)
    linked0, linked1 = links0.open(), links1.open()
    assert links0.link(1) is links1.link(0) is None

    dialler, to1 = links0.dialler(1), FakeTransport()
    dialler.connection_made(to1)
    assert bytes(to1.written[:32]) == policy0.preamble
    assert int.from_bytes(to1.written[32:34], "little") == 0, "MPyC's hello is no longer the pid"
    assert linked0.done() and links0.link(1) is dialler

    listener = links1.listener()
    listener.connection_made(FakeTransport())
    listener.data_received(bytes(to1.written[:33]))  # one byte short of the claimed index
    assert ("admit", policy0.preamble, 0) not in policy1.events
    listener.data_received(bytes(to1.written[33:]))
    assert ("admit", policy0.preamble, 0) in policy1.events
    assert linked1.done() and links1.link(0) is listener and listener.admitted

    received = listener.receive(7)
    sent = len(to1.written)
    dialler.send(7, b"payload")
    assert bytes(to1.written[sent:]) == struct.pack("<qI", 7, 7) + b"payload"
    listener.data_received(bytes(to1.written[sent:]))
    assert received.done() and received.result() == b"payload"
    assert not listener.awaits_message()
    listener.receive(8)
    assert listener.awaits_message()

    sent = len(to1.written)
    links0.goodbye("out of time")
    listener.data_received(bytes(to1.written[sent:]))
    assert ("stopped", 0, "out of time") in policy1.events

    listener.connection_lost(None)
    assert ("lost", 0, True) in policy1.events
    links1.mark_started()
    listener.connection_lost(None)
    assert ("lost", 0, False) in policy1.events
    rt1.parties[1].protocol = asyncio.Future()  # as Runtime.shutdown does before closing
    policy1.closing = True
    listener.connection_lost(None)
    assert links1.link(0) is None


async def test_a_refused_caller_never_reaches_mpyc():
    rt = mpyc_seam.install_runtime(1, ADDRESSES[:2], 0)
    policy = RecordingPolicy(admit=False)
    links = mpyc_seam.SessionLinks(rt, policy)
    links.open()
    listener, transport = links.listener(), FakeTransport()
    listener.connection_made(transport)
    listener.data_received(b"X" * 32 + (0).to_bytes(2, "little") + bytes(16))
    assert transport.closed and not listener.admitted and links.link(0) is None
    listener.connection_lost(None)
    assert not [e for e in policy.events if e[0] == "lost"]


def test_mpyc_unpickles_peers_messages_through_the_module_name_the_seam_replaces():
    source = inspect.getsource(mpyc_runtime)
    # transfer, input, output and _reshare load what a peer sent with pickle.loads
    assert source.count("pickle.loads") == 4, "MPyC changed how it unpickles messages"
    mpyc_seam.install_runtime(0, [("127.0.0.1", 0)], 0)
    assert mpyc_runtime.pickle is mpyc_seam.SafePickle


def test_a_peers_pickle_builds_data_and_arrays_but_never_runs_code(tmp_path):
    import os
    import pickle
    loads = mpyc_seam.SafePickle.loads
    for value in (12345678901234567890123, b"\x02" * 33, [1, (2, b"x")], "text",
                  np.array([1, 2**100], dtype=object), np.arange(5, dtype=np.int64),
                  np.int64(7)):
        got = loads(pickle.dumps(value))
        assert (got == value).all() if isinstance(value, np.ndarray) else got == value

    class Evil:
        def __reduce__(self):
            return os.mkdir, (str(tmp_path / "pwned"),)

    with pytest.raises(pickle.UnpicklingError, match="posix.mkdir|os.mkdir"):
        loads(pickle.dumps(Evil()))
    assert not (tmp_path / "pwned").exists()

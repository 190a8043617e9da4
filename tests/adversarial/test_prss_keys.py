"""A PRSS key generator that gives two members of its subset different keys.

The attack: among five parties (t = 2) the adversary holds parties 0 and 3.  MPyC lets the
first member of each subset of three make the subset's PRSS key and send it to the others:
party 0 sends honest party 1 one key of (0, 1, 2) and honest party 2 another, chosen knowing
the common input of the noise below (the program is public).  In a checked portfolio job
(``pricing_active``, security: malicious) the totals are opened with PRSS noise below their
precision.  Party 2's shares of the noise are now off by e (the adversary knows both keys,
so e too); the honest shares (parties 1, 2, 4) still lie on one degree-2 polynomial, and
parties 0 and 3 send its values at their own points: the checked opening passes, and every
honest party opens the same totals, each moved by more than 2^100 (the noise is below
2^36).  Now every party first compares digests of the PRSS keys it shares with each peer
(``mpyc_seam.agree_prss_keys``): parties 1 and 2 disagree and stop (as does party 0, running
the honest check), and the others stop when their peers leave; nothing is opened.
"""

import asyncio
import hashlib
import json
import os

import numpy as np
import pytest

from protocols import mpyc_seam, pricing_active
from protocols.active import Deviation
from protocols.pricing import F, NOISE_BITS, QTY_BITS
from protocols.shamir import lagrange_coefficients
from tests.mpc_harness import run_parties
from tests.test_pricing_protocol import GRID, _party_vols, _public

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(300)]

SUBSET = (0, 1, 2)  # its key is made by party 0
CORRUPTED = (0, 3)
HONEST = (1, 2, 4)
KEY = b"A" * 16     # what party 0 holds and gave party 1


def _book():
    options = [GRID[40]]
    deltas = np.linspace(-0.004, 0.004, 5)[:, None] * np.ones(len(options))
    public = _public(options, 0.03, portfolio=True, quantities=[-3.0])
    return public, _party_vols(options, deltas)


def _error(field, other: bytes, uci: bytes, bits: int, n: int) -> np.ndarray:
    """How far party 2's shares of the noise are off: its key's draws less party 1's, times
    f_S at its point (``mpyc_seam.prss_weight``)."""
    drawn = [mpyc_seam._stream(key, uci, bits, n).astype(object) for key in (other, KEY)]
    return (drawn[0] - drawn[1]) * int(mpyc_seam.thresha._f_S_i(field, 5, 2, SUBSET)) \
        % field.modulus


def _basis(p: int, x: int) -> int:
    """At point x, the degree-2 polynomial that is 1 at party 2's point and 0 at the other
    honest parties': how an error on party 2's share moves the honest polynomial there."""
    return lagrange_coefficients([pid + 1 for pid in HONEST], x, p)[1]


def _other_key(field, uci: bytes, bits: int, n: int) -> bytes:
    """The key party 0 gives party 2, chosen knowing the common input of the totals' noise
    (the program is public) so that every opened total moves by more than 2^100."""
    p = field.modulus
    for i in range(10_000):
        key = hashlib.sha256(b"B%d" % i).digest()[:16]
        shifts = _error(field, key, uci, bits, n) * _basis(p, 0) % p
        if all(min(v, p - v) > 2 ** 100 for v in shifts):
            return key
    raise AssertionError("no key moves every total by more than 2^100")


def _equivocate(rt, uci: bytes, n: int) -> None:
    """Party 0 gave parties 1 and 2 different keys of SUBSET (set here, after the handshake);
    parties 0 and 3 add to their noise shares what puts them on the honest parties' polynomial."""
    field, bits = rt.SecFld(pricing_active.WIDE).field, F + QTY_BITS - NOISE_BITS
    other = _other_key(field, uci, bits, n)
    if rt.pid in (0, 1, 2):
        rt._prss_keys[SUBSET] = other if rt.pid == 2 else KEY
    if rt.pid not in CORRUPTED:
        return
    honest_share = pricing_active.prss_share
    onto = _error(field, other, uci, bits, n) * _basis(field.modulus, rt.pid + 1)

    def share(rt_, field_, bound, count):
        assert (bound, count) == (1 << bits, n), "the totals' noise is drawn otherwise now"
        noise = honest_share(rt_, field_, bound, count)
        assert rt._prss_uci_drawn[-1] == uci, "the totals' noise is drawn at another input now"
        return field_.array(noise.value + onto)
    pricing_active.prss_share = share


def _record_ucis(rt) -> None:
    """Keep each PRSS common input the runtime draws (rt._prss_uci_drawn)."""
    rt._prss_uci_drawn, draw = [], rt._prss_uci

    def uci():
        rt._prss_uci_drawn.append(draw())
        return rt._prss_uci_drawn[-1]
    rt._prss_uci = uci


async def _agreement_ignored(rt, names=None) -> None:
    """The key agreement's round with its verdict ignored: the job as before the check, on
    the same rounds (and so the same common inputs) as with it."""
    try:
        await mpyc_seam.agree_prss_keys(rt, names)
    except Deviation:
        pass


def _print_and_exit(result) -> None:
    print(json.dumps(result), flush=True)
    os._exit(0)  # a stopped session cannot end cleanly: the parties stopped at different rounds


async def _until_a_peer_leaves(rt) -> None:
    while all(p.pid == rt.pid or (p.protocol is not None and not p.protocol.transport.is_closing())
              for p in rt.parties):
        await asyncio.sleep(0.05)


async def portfolio(rt, vols: list, public: dict, attack: list | None, heed: bool):
    """(Run in each party.) The checked portfolio job; with ``attack`` ([the totals' noise's
    common input in hex, the number of totals]) SUBSET's key equivocated and the corrupted
    parties' shares matched to it; the key agreement's verdict ignored unless ``heed``.  The
    result and the noise's common input, a Deviation, or that a peer left before the end."""
    _record_ucis(rt)
    if attack:
        _equivocate(rt, bytes.fromhex(attack[0]), attack[1])
    if not heed:
        pricing_active.agree_prss_keys = _agreement_ignored
    job = asyncio.ensure_future(pricing_active.price(rt, vols, public))
    left = asyncio.ensure_future(_until_a_peer_leaves(rt))
    await asyncio.wait({job, left}, return_when=asyncio.FIRST_COMPLETED)
    if not job.done():
        _print_and_exit({"stopped": "a peer left"})
    left.cancel()
    try:
        return job.result() | {"uci": rt._prss_uci_drawn[-1].hex()}
    except Deviation as exc:
        _print_and_exit({"deviation": str(exc), "culprits": list(exc.culprits)})


def _run(attack: list | None, heed: bool) -> list:
    public, vols = _book()
    return run_parties("tests.adversarial.test_prss_keys:portfolio",
                       [[v, public, attack, heed] for v in vols], timeout=120)


def test_an_equivocated_prss_key_shifted_the_opened_totals_unseen_and_now_stops_the_job():
    honest = _run(None, heed=True)
    assert all(r == honest[0] for r in honest) and honest[0]["breached"] == []
    attack = [honest[0]["uci"], len(honest[0]["rows"])]
    noise = 10 * 2 ** (honest[0]["scale_bits"] - NOISE_BITS)  # C(5, 2) subsets' draws

    before = _run(attack, heed=False)  # as before the check
    got = [before[pid] for pid in HONEST]
    assert got[0]["uci"] == honest[0]["uci"]
    assert all(r == got[0] for r in got), "the honest parties opened different totals"
    shifts = [abs(a - b) for a, b in zip(got[0]["rows"], honest[0]["rows"])]
    assert min(shifts) > 2 ** 60 * noise, f"a total moved by less than expected: {shifts}"

    after = _run(attack, heed=True)
    for pid in (1, 2):  # the honest members of SUBSET
        assert after[pid]["culprits"] == [], after[pid]
        assert "PRSS key of parties session party 0, session party 1, session party 2" \
            " differs" in after[pid]["deviation"]
    assert after[4] == {"stopped": "a peer left"}  # it holds no key of SUBSET
    assert not any("rows" in r for r in after), "a total was released"

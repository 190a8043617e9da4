"""Deviating parties inside a resharing (protocols.reshare), in real MPyC party processes.

What the protocol tests (tests/test_reshare_protocol.py) do not: a dealer that sends
different commitments to different parties (each consistent with the sub-shares it sends
with them), a new party that sends a complaint against an honest dealer to some parties but
not to the dealer, and a dealer that sends a pickle in place of its dealing (cheating
dealings: tests/adversarial/reshare_cheats.py).  Each aborts the resharing on the honest
parties that would otherwise end with different sharings, and no honest party is named.  On real clusters under `security: malicious`:
tests/test_e2e_reshare_malicious.py.
"""

from __future__ import annotations

import json
import os
import pickle

import pytest

import protocols.reshare
from tests.adversarial.reshare_cheats import Equivocating
from tests.test_reshare_protocol import keygen, make_plan, run_reshare

pytestmark = [pytest.mark.heavy, pytest.mark.timeout(180)]


async def equivocating_dealer(rt, plan: dict, share):
    return await protocols.reshare.reshare(rt, plan, share, Equivocating)


def _lie_in_round(n: int, lie):
    """This party's n-th round of the resharing (1: deal, 2: complain, 3: open) sends
    lie(me, j, message) to each peer j instead of its message."""
    real, rounds = protocols.reshare.exchange, []

    def exchange(rt, outgoing):
        rounds.append(n)
        if len(rounds) == n:
            outgoing = [o if j == rt.pid else lie(rt.pid, j, o) for j, o in enumerate(outgoing)]
        return real(rt, outgoing)

    protocols.reshare.exchange = exchange  # this party process only


async def accuser_equivocates(rt, plan: dict, share, dealer: int, told: list[int]):
    """A complaint against `dealer` (honest) to the parties `told` only, not to the dealer."""
    def lie(me, j, message):
        if j not in told:
            return message
        return json.dumps({**json.loads(message), "complaints": [dealer]}).encode()

    _lie_in_round(2, lie)
    return await protocols.reshare.reshare(rt, plan, share)


class _Marker:
    """Unpickled, it makes a directory: what a peer that loads pickles would run."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.mkdir, (self.path,)


async def dealer_sends_a_pickle(rt, plan: dict, share, marker: str):
    _lie_in_round(1, lambda me, j, message: pickle.dumps(_Marker(f"{marker}-{j}")))
    return await protocols.reshare.reshare(rt, plan, share)


TARGET = "tests.adversarial.test_reshare_dealers:"


def _old_key_and_plan():
    """A 2-of-3 ECDSA key (real keygen), reshared 2-of-3 -> 2-of-4: all three old holders
    deal, a newcomer (session party 3) joins."""
    old = keygen("secp256k1", 3, 1)
    plan = make_plan("secp256k1", old[0], 1, [1, 2, 3, None], 1, [1, 2, 3, 4])
    return plan, {i: old[i]["share"] for i in range(3)}


def run_reshare_mixed(plan: dict, shares: dict[int, int], cheats: dict[int, tuple]) -> list:
    """Every session party reshares, those in `cheats` by (cheat, extra args) of `party`;
    each party's output or ``{"aborted": reason, "cheaters": [...]}``."""
    return run_reshare(plan, shares, target=f"{TARGET}party",
                       extra={pid: [cheats[pid][0], *cheats[pid][1]] if pid in cheats
                              else [None] for pid in range(len(plan["old_points"]))})


async def party(rt, plan: dict, share, cheat: str | None, *extra):
    """One session party of these tests: honest (cheat None) or running a cheat above; an
    abort is its result, so every party ends the session (no peer waits for one that
    stopped)."""
    run = globals()[cheat](rt, plan, share, *extra) if cheat else \
        protocols.reshare.reshare(rt, plan, share)
    try:
        return await run
    except protocols.reshare.ReshareError as exc:
        return {"aborted": str(exc), "cheaters": exc.cheaters}


def test_a_dealer_that_sends_different_commitments_to_different_parties_aborts_everyone():
    plan, shares = _old_key_and_plan()
    out = run_reshare_mixed(plan, shares, {2: ("equivocating_dealer", [])})
    for pid in range(4):  # each sees the digests of the other parity differ
        assert "received other commitments from dealer 2 than this party did" in \
            out[pid]["aborted"], out[pid]
        assert out[pid]["cheaters"] == []  # nothing proven: none named


def test_a_complaint_hidden_from_its_dealer_aborts_without_naming_the_honest_dealer():
    plan, shares = _old_key_and_plan()
    out = run_reshare_mixed(plan, shares, {3: ("accuser_equivocates", [0, [1, 2]])})
    for pid in (1, 2):
        assert "dealer 0 opened no sub-share for the complaints of parties [3]" in \
            out[pid]["aborted"], out[pid]
        assert out[pid]["cheaters"] == []  # the honest dealer is not named
    assert "share" in out[0]  # the dealer saw no complaint: it stages, and the commit
    # (every party's vote for one sharing) fails without parties 1 and 2


def test_a_pickle_in_place_of_a_dealing_is_not_loaded_and_names_its_dealer(tmp_path):
    plan, shares = _old_key_and_plan()
    marker = str(tmp_path / "unpickled-by")
    out = run_reshare_mixed(plan, shares, {2: ("dealer_sends_a_pickle", [marker])})
    assert not list(tmp_path.iterdir()), "an honest party loaded a peer's pickle"
    for pid in (0, 1, 3):
        assert "dealers [2] sent commitments that are malformed" in out[pid]["aborted"]
        assert out[pid]["cheaters"] == [2]

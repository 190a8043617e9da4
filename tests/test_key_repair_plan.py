"""The coordinator's repair plan for a key whose parties disagree (pure; the end-to-end
cases with real crashes are in test_crash_refresh)."""

import pytest

from mpc_nodes.jobs.epochs import RepairError, plan, verdict

A, B, C = "a" * 64, "b" * 64, "c" * 64
NAMES = ["party0", "party1", "party2"]


def st(committed, epochs, promised=None):
    return {"committed": committed, "epochs": {str(e): d for e, d in epochs.items()},
            "promised": {str(e): d for e, d in (promised or {}).items()}}


def test_consistent_keys_need_nothing():
    states = {n: st(1, {1: B}) for n in NAMES}
    assert plan("k", states, NAMES) == []
    assert verdict("k", states, NAMES) == "consistent: every party at epoch 1"


def test_an_epoch_one_party_committed_is_finished_and_the_old_one_dropped():
    states = {"party0": st(1, {0: A, 1: B}), "party1": st(0, {0: A, 1: B}, {1: B}),
              "party2": st(1, {0: A, 1: B})}
    assert plan("k", states, NAMES) == [
        ("key-commit", {"key_id": "k", "epoch": 1, "sharing": B}),
        ("key-finalise", {"key_id": "k", "epoch": 1})]


def test_a_stage_every_party_holds_is_finished_one_some_lack_is_aborted():
    full = {n: st(0, {0: A, 1: B}) for n in NAMES}
    assert plan("k", full, NAMES)[0] == ("key-commit", {"key_id": "k", "epoch": 1,
                                                        "sharing": B})
    partial = {**full, "party2": st(0, {0: A})}
    assert plan("k", partial, NAMES) == [("key-abort", {"key_id": "k", "epoch": 1})]
    differing = {**full, "party2": st(0, {0: A, 1: C})}
    assert plan("k", differing, NAMES) == [("key-abort", {"key_id": "k", "epoch": 1})]


def test_a_half_made_key_is_removed():
    states = {"party0": st(None, {0: A}), "party1": st(None, {0: A}), "party2": st(None, {})}
    assert plan("k", states, NAMES) == [("key-abort", {"key_id": "k", "epoch": 0})]
    gone = {n: st(None, {}) for n in NAMES}
    assert verdict("k", gone, NAMES) == "no party holds this key"


def test_only_dropping_the_old_epoch_is_left():
    states = {n: st(1, {0: A, 1: B}) for n in NAMES}
    assert plan("k", states, NAMES) == [("key-finalise", {"key_id": "k", "epoch": 1})]


def test_no_repair_without_every_party_or_with_conflicting_votes():
    with pytest.raises(RepairError, match="missing: party2"):
        plan("k", {n: st(0, {0: A}) for n in NAMES[:2]}, NAMES)
    states = {"party0": st(0, {0: A, 1: B}, {1: B}), "party1": st(0, {0: A, 1: C}, {1: C}),
              "party2": st(0, {0: A})}
    with pytest.raises(RepairError, match="different sharings"):
        plan("k", states, NAMES)

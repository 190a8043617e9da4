"""The node's record of which participant set and aggregation each input version is bound to
(mpc_nodes/input_usage.py); the attacks it stops are in tests/adversarial/test_input_combination.py."""

import hashlib
import os
import sqlite3
import stat

import pytest

from mpc_nodes.node.input_usage import InputReused, InputUsage, InputUse

SET = ["party0", "party1", "party2"]


def use(value: float, method: str = "mean", label: str = "private input 'x'") -> InputUse:
    return InputUse(label, b"number\0" + value.hex().encode(), method)


def test_first_use_binds_then_only_the_same_set_and_aggregation_pass(tmp_path):
    usage = InputUsage(tmp_path / "u.sqlite")
    usage.check([use(0.61)])  # nothing bound yet
    usage.claim([use(0.61)], SET)
    usage.claim([use(0.61)], SET)  # the same job again
    with pytest.raises(InputReused, match="bound to participants party0, party1, party2"):
        usage.claim([use(0.61)], ["party1", "party2", "party3"])
    with pytest.raises(InputReused, match="bound to aggregation 'mean'"):
        usage.check([use(0.61, "median")])
    with pytest.raises(InputReused, match="bound to aggregation 'mean'"):
        usage.claim([use(0.61, "median")], SET)
    usage.claim([use(0.62, "median")], ["party1", "party2", "party3"])  # a new value: fresh


def test_a_refused_claim_binds_none_of_its_inputs(tmp_path):
    usage = InputUsage(tmp_path / "u.sqlite")
    usage.claim([use(0.5)], SET)
    with pytest.raises(InputReused):
        usage.claim([use(0.7), use(0.5)], ["party0", "party1", "party3"])
    usage.claim([use(0.7)], ["party2", "party3", "party4"])  # 0.7 was not bound above


def test_bindings_survive_a_restart_and_digests_are_keyed(tmp_path):
    path = tmp_path / "u.sqlite"
    InputUsage(path).claim([use(0.61)], SET)
    with pytest.raises(InputReused):
        InputUsage(path).claim([use(0.61)], ["party1", "party2", "party3"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    # a plain hash of the value (which anyone could compute by trying values) is not stored
    other = InputUsage(tmp_path / "v.sqlite")
    other.claim([use(0.61)], SET)
    stored = [sqlite3.connect(p).execute("SELECT version FROM binding").fetchone()[0]
              for p in (path, tmp_path / "v.sqlite")]
    assert stored[0] != stored[1]  # each node has its own key
    assert hashlib.sha256(use(0.61).value).hexdigest() not in stored

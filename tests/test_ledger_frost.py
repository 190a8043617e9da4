"""The coordinator's ledger of preprocessed FROST commitments: one per signer and signature,
taken all together or not at all, each handed out once also to coordinator processes running
at the same time; entries a party can no longer use (it restarted since, they expired, the
key moved to another epoch, it refused one) are dropped with a reason."""

import multiprocessing
import time

import pytest

from mpc_nodes.client.ledger import Ledger

pytestmark = pytest.mark.timeout(120)

BOOTS = {"party0": "a" * 16, "party1": "b" * 16, "party2": "c" * 16}


def add(ledger, party: str, count: int, epoch=0, boot=None, expires=None, tag="") -> None:
    made = [{"hiding": f"{tag}{party}h{i}", "binding": f"{party}b{i}"} for i in range(count)]
    ledger.add_commitments("oracle-1", party, int(party[-1]) + 1, made, epoch,
                           boot or BOOTS[party], time.time() + 3600 if expires is None else expires)


def test_one_commitment_per_signer_all_or_none(tmp_path):
    ledger = Ledger(tmp_path / "coordinator.yaml")
    add(ledger, "party0", 2)
    add(ledger, "party1", 1)
    assert ledger.commitments("oracle-1") == {"party0": 2, "party1": 1}
    assert ledger.take_commitments("oracle-1", ["party0", "party2"], 0, BOOTS) == (None, [])
    assert ledger.commitments("oracle-1") == {"party0": 2, "party1": 1}  # nothing taken
    taken, dropped = ledger.take_commitments("oracle-1", ["party0", "party1"], 0, BOOTS)
    assert dropped == [] and {n: e["hiding"] for n, e in taken.items()} == {
        "party0": "party0h0", "party1": "party1h0"}
    assert taken["party1"]["identifier"] == 2
    assert ledger.take_commitments("oracle-1", ["party0", "party1"], 0, BOOTS)[0] is None
    assert ledger.commitments("oracle-1") == {"party0": 1}


def test_unusable_commitments_are_dropped_with_the_reason(tmp_path):
    ledger = Ledger(tmp_path / "coordinator.yaml")
    add(ledger, "party0", 1, boot="d" * 16, tag="old")  # party0 restarted since
    add(ledger, "party0", 1, expires=time.time() - 1, tag="late")
    add(ledger, "party0", 1, epoch=1, tag="moved")
    add(ledger, "party0", 1)
    add(ledger, "party1", 1)
    taken, dropped = ledger.take_commitments("oracle-1", ["party0", "party1"], 0, BOOTS)
    assert taken["party0"]["hiding"] == "party0h0"
    assert [d["reason"] for d in dropped] == [
        "party0 restarted since (a restart discards its nonces)", "expired",
        "bound to epoch 1; the key is at epoch 0"]
    add(ledger, "party2", 2)
    assert [d["reason"] for d in ledger.reconcile_commitments(
        "oracle-1", 0, {"party0": "a" * 16})] == [
        "party2 is not online (its nonces are gone if it restarts)"] * 2
    add(ledger, "party1", 3, tag="more")
    assert ledger.drop_commitments("oracle-1", "party1", "refused: unknown here") == 3
    assert ledger.commitments("oracle-1") == {}


def _take(path, parties, out) -> None:
    ledger = Ledger(path)
    while True:
        taken, _ = ledger.take_commitments("oracle-1", parties, 0, BOOTS)
        if taken is None:
            return
        out.put(tuple(sorted(e["hiding"] for e in taken.values())))


def test_concurrent_coordinators_never_take_the_same_commitment(tmp_path):
    path = tmp_path / "coordinator.yaml"
    ledger = Ledger(path)
    for party in BOOTS:
        add(ledger, party, 40)
    out = multiprocessing.get_context("spawn").Queue()
    procs = [multiprocessing.get_context("spawn").Process(
        target=_take, args=(path, parties, out)) for parties in (
            ["party0", "party1"], ["party1", "party2"], ["party0", "party2"],
            ["party0", "party1"])]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    taken = []
    while not out.empty():
        taken += out.get()
    assert len(taken) == len(set(taken))
    assert len(taken) == 120 - sum(ledger.commitments("oracle-1").values())

"""The coordinator's ledger: each presignature is handed out once, also to coordinator
processes running at the same time (issue 11 item 7: 4 of 14 concurrent `sign --presigned`
took the same one from keys.json); entries a node can no longer hold (it restarted since:
presignatures live in its memory only; or they expired) are dropped with a reason instead of
being tried; keys.json of earlier versions is migrated."""

import json
import multiprocessing
import time

from mpc_nodes.client.ledger import Ledger

NOW = {"party0": "a" * 16, "party1": "b" * 16, "party2": "c" * 16}
HOLDERS = ",".join(NOW)


def add(ledger, ids, boots=NOW, expires=None):
    ledger.add_presignatures("vault-1", ids, HOLDERS, 0, boots,
                             time.time() + 3600 if expires is None else expires)


def test_presignatures_of_restarted_or_expired_holders_are_dropped(tmp_path):
    ledger = Ledger(tmp_path / "coordinator.yaml")
    add(ledger, ["old-boot"], {**NOW, "party1": "d" * 16})  # party1 restarted since
    add(ledger, ["expired"], expires=time.time() - 1)
    add(ledger, ["good", "next"])
    taken, dropped = ledger.take_presignature("vault-1", NOW)
    assert taken["id"] == "good"
    assert [(d["id"], d["reason"]) for d in dropped] == [
        ("old-boot", "party1 restarted since (a restart discards its presignatures)"),
        ("expired", "expired")]
    again = Ledger(tmp_path / "coordinator.yaml")
    assert [e["id"] for e in again.presignatures("vault-1")] == ["next"]
    offline = {k: v for k, v in NOW.items() if k != "party2"}
    assert [(d["id"], d["reason"]) for d in again.reconcile("vault-1", offline)] == [
        ("next", "party2 is not online (its presignatures are gone if it restarts)")]
    assert again.take_presignature("vault-1", NOW) == (None, [])
    assert {e["id"]: e["reason"] for e in again.presignatures("vault-1", "dropped")}["next"] \
        .startswith("party2 is not online")


def test_keys_json_of_an_earlier_version_is_migrated_once(tmp_path):
    old = {"vault-1": {"scheme": "ecdsa-secp256k1", "epoch": 2, "t": 1, "n": 3,
                       "presignatures": [
                           {"id": "legacy", "binding": HOLDERS, "epoch": 2},  # no boot ids
                           {"id": "p1", "binding": HOLDERS, "epoch": 2, "boots": NOW,
                            "expires": time.time() + 3600}]},
           "frost-1": {"scheme": "frost-ed25519", "epoch": 0, "purpose": "raw"}}
    (tmp_path / "keys.json").write_text(json.dumps(old))
    ledger = Ledger(tmp_path / "coordinator.yaml")
    assert ledger.data == {"vault-1": {"scheme": "ecdsa-secp256k1", "epoch": 2, "t": 1, "n": 3},
                           "frost-1": {"scheme": "frost-ed25519", "epoch": 0, "purpose": "raw"}}
    assert not (tmp_path / "keys.json").exists() and (tmp_path / "keys.json.migrated").exists()
    (tmp_path / "keys.json").write_text("{}")  # a stray copy later is not imported again
    assert Ledger(tmp_path / "coordinator.yaml").data == ledger.data
    taken, dropped = ledger.take_presignature("vault-1", NOW)
    assert taken["id"] == "p1" and [d["id"] for d in dropped] == ["legacy"]


def test_key_records_of_two_processes_do_not_overwrite_each_other(tmp_path):
    a, b = Ledger(tmp_path / "coordinator.yaml"), Ledger(tmp_path / "coordinator.yaml")
    a.key("key-a")["epoch"] = 0
    b.key("key-b")["epoch"] = 0
    a.save()
    b.save()
    assert set(Ledger(tmp_path / "coordinator.yaml").data) == {"key-a", "key-b"}


def _take(path, barrier, out):
    ledger = Ledger(path)
    barrier.wait()
    taken, _ = ledger.take_presignature("vault-1", NOW)
    out.put(taken and taken["id"])


def test_concurrent_coordinator_processes_never_take_the_same_presignature(tmp_path):
    ledger = Ledger(tmp_path / "coordinator.yaml")
    add(ledger, [f"p{i:02}" for i in range(20)])
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(14), ctx.Queue()
    procs = [ctx.Process(target=_take, args=(tmp_path / "coordinator.yaml", barrier, out))
             for _ in range(14)]
    for p in procs:
        p.start()
    taken = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert None not in taken and len(set(taken)) == 14  # each handed out once
    left = [e["id"] for e in Ledger(tmp_path / "coordinator.yaml").presignatures("vault-1")]
    assert sorted(left + taken) == [f"p{i:02}" for i in range(20)]

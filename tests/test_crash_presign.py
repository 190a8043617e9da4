"""Issue 11 item 7: concurrent coordinators do not collide, and the coordinator's
presignature pool agrees with the parties' (which live in their memory only).

Tried as an operator would: 14 `sign --presigned` processes at once (4 of 14 took the same
presignature from keys.json, 3 failed); a party killed in the middle of a presign job; a
presignature the nodes already used (another coordinator, a restored ledger) offered again."""

import asyncio
import json
import signal
import subprocess
import sys
import time

import pytest

from mpc_nodes.client.ledger import Ledger
from tests.cluster_harness import eth_policy, wait_until, write_policies
from tests.test_e2e_keys import RECIPIENT, verified_by_others

pytestmark = pytest.mark.e2e
POLICY = eth_policy(RECIPIENT)


def tx(nonce):
    return {"chainId": 11155111, "nonce": nonce, "to": RECIPIENT, "value": str(10**16),
            "data": "0x", "gas": 21000, "maxFeePerGas": 30 * 10**9,
            "maxPriorityFeePerGas": 10**9}


def mpcnet(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *args], text=True,
                          capture_output=True, timeout=timeout)


async def started_cluster(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    write_policies(cluster, POLICY)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
    common = ["--dir", str(cluster.dir), "--broker", cluster.broker_url]
    made = await asyncio.to_thread(mpcnet, "keygen", *common, "--label", "vault-1", "--json")
    assert made.returncode == 0, made.stderr
    return cluster, common


def ledger(cluster) -> Ledger:
    return Ledger(cluster.dir / "coordinator" / "coordinator.yaml")


def refusals(cluster, text: str) -> int:
    return sum(cluster.log(i).count(text) for i in range(3))


def sign_command(common, tx_file):
    return [sys.executable, "-m", "mpc_nodes.cli.app", "sign", *common, "--key", "vault-1",
            "--tx", str(tx_file), "--presigned", "--json"]


@pytest.mark.timeout(420)
async def test_fourteen_concurrent_presigned_signs_each_take_their_own(make_cluster, tmp_path):
    cluster, common = await started_cluster(make_cluster)
    pre = await asyncio.to_thread(mpcnet, "presign", *common, "--key", "vault-1", "--count",
                                  "16")
    assert pre.returncode == 0, pre.stderr
    procs = []
    for nonce in range(14):
        (tmp_path / f"tx{nonce}.json").write_text(json.dumps(tx(nonce)))
        procs.append(subprocess.Popen(sign_command(common, tmp_path / f"tx{nonce}.json"),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    t = time.monotonic()
    try:
        done = [await asyncio.to_thread(p.communicate, timeout=300) for p in procs]
        print(f"14 concurrent sign --presigned done in {time.monotonic() - t:.1f}s")
    finally:
        for p in procs:
            p.kill()
    used = []
    for nonce, (p, (out, errs)) in enumerate(zip(procs, done)):
        assert p.returncode == 0, errs
        outcome = json.loads(out)
        verified_by_others(outcome["output"], tx(nonce))
        used.append(outcome["params"]["presignature"])
    assert len(set(used)) == 14  # every presignature handed out once
    assert refusals(cluster, "was already used") == 0
    assert len(ledger(cluster).presignatures("vault-1")) == 2
    assert set(used) == {e["id"] for e in ledger(cluster).presignatures("vault-1", "taken")}


@pytest.mark.timeout(300)
async def test_a_kill_during_presign_leaves_a_reconciled_pool(make_cluster, tmp_path):
    cluster, common = await started_cluster(make_cluster)
    first = await asyncio.to_thread(mpcnet, "presign", *common, "--key", "vault-1", "--count",
                                    "5")
    assert first.returncode == 0, first.stderr
    kept = {e["id"] for e in ledger(cluster).presignatures("vault-1")}
    assert len(kept) == 5

    # the largest batch: checked presignatures take ~3 ms each, and the kill must land while
    # the session runs (20 finished before it under security: malicious)
    presign = subprocess.Popen([sys.executable, "-m", "mpc_nodes.cli.app", "presign", *common,
                                "--key", "vault-1", "--count", "100", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        votes = cluster.log(1).count("(presign) from")
        await wait_until(lambda: cluster.log(1).count("(presign) from") > votes, 60,
                         "party1 votes on the presign: it runs now")
        cluster.stop_node(1, signal.SIGKILL)
        killed = time.monotonic()
        out, _ = await asyncio.to_thread(presign.communicate, timeout=200)
        print(f"presign failed {time.monotonic() - killed:.1f}s after the kill (CLI exit)")
    finally:
        presign.kill()
    assert presign.returncode == 1 and not json.loads(out)["ok"]

    cluster.start_node(1)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
    # the coordinator's pool now holds only ids party1 lost: reconciling drops them all
    pool = ledger(cluster).presignatures("vault-1")
    assert {e["id"] for e in pool} == kept  # the failed job recorded nothing
    t = time.monotonic()
    run = await asyncio.to_thread(mpcnet, "keys", "presignatures", *common, "--reconcile",
                                  "--json")
    print(f"reconciled in {time.monotonic() - t:.1f}s (CLI included)")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)["vault-1"]
    assert report["ready"] == 0
    assert {d["id"] for d in report["dropped_now"]} == kept
    assert all("party1 restarted since" in d["reason"] for d in report["dropped_now"])

    tx_file = tmp_path / "tx.json"
    tx_file.write_text(json.dumps(tx(0)))
    empty = await asyncio.to_thread(subprocess.run, sign_command(common, tx_file), text=True,
                                    capture_output=True, timeout=120)
    assert empty.returncode != 0 and "no presignatures left for vault-1" in empty.stderr
    assert refusals(cluster, "unknown here") == 0  # no sign ever asked a holder that lacks it

    again = await asyncio.to_thread(mpcnet, "presign", *common, "--key", "vault-1", "--count",
                                    "2")
    assert again.returncode == 0, again.stderr
    signed = await asyncio.to_thread(subprocess.run, sign_command(common, tx_file), text=True,
                                     capture_output=True, timeout=120)
    assert signed.returncode == 0, signed.stderr
    verified_by_others(json.loads(signed.stdout)["output"], tx(0))


@pytest.mark.timeout(240)
async def test_a_presignature_the_holders_refuse_is_dropped_with_their_reason(make_cluster,
                                                                               tmp_path):
    cluster, common = await started_cluster(make_cluster)
    pre = await asyncio.to_thread(mpcnet, "presign", *common, "--key", "vault-1", "--count",
                                  "2")
    assert pre.returncode == 0, pre.stderr
    first, second = ledger(cluster).presignatures("vault-1")
    # another coordinator process (e.g. with a restored copy of this ledger) uses the first
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        other = await c.run_job("sign", {"key_id": "vault-1", "tx": tx(0),
                                         "presignature": first["id"]},
                                only=first["binding"].split(","))
        assert other.ok, other.error
    tx_file = tmp_path / "tx.json"
    tx_file.write_text(json.dumps(tx(1)))
    t = time.monotonic()
    signed = await asyncio.to_thread(subprocess.run, sign_command(common, tx_file), text=True,
                                     capture_output=True, timeout=120)
    print(f"signed with the next presignature in {time.monotonic() - t:.1f}s (CLI included)")
    assert signed.returncode == 0, signed.stderr
    outcome = json.loads(signed.stdout)
    verified_by_others(outcome["output"], tx(1))
    assert outcome["params"]["presignature"] == second["id"]
    assert f"dropped presignature {first['id']}" in signed.stderr
    dropped = {e["id"]: e["reason"] for e in ledger(cluster).presignatures("vault-1", "dropped")}
    assert f"presignature {first['id']} was already used" in dropped[first["id"]]

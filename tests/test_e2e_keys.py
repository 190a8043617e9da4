"""Threshold keys end to end with real node processes and a real broker: keygen, signing
checked by libsecp256k1 (coincurve) and eth-account, the 2t+1 rule, policies, presignatures,
refresh under crashes, and damaged or wrongly unlocked share stores."""

import json
import signal

import coincurve
import pytest
from eth_account import Account

from keyshare import KeyStore
from mpc_nodes.jobs.ecdsa import check_signature
from mpc_nodes.jobs.evm import parse_transaction
from tests.cluster_harness import eth_policy, write_policies
from tests.conftest import BROKERS

pytestmark = pytest.mark.e2e
RECIPIENT = "0x1111111111111111111111111111111111111111"
POLICY = eth_policy(RECIPIENT, daily_cap_wei=1_500_000_000_000_000_000)


def tx(nonce, value=10**17, **changes):
    return {"chainId": 11155111, "nonce": nonce, "to": RECIPIENT, "value": str(value),
            "data": "0x", "gas": 21000, "maxFeePerGas": 30 * 10**9,
            "maxPriorityFeePerGas": 10**9, **changes}


def with_policies(cluster):
    return write_policies(cluster, POLICY)


def verified_by_others(out, transaction):
    """Independent checks: libsecp256k1 on the digest, eth-account on the raw transaction."""
    assert check_signature(out) is None
    r, s = int(out["r"], 16), int(out["s"], 16)
    der = coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(
        r.to_bytes(32, "big") + s.to_bytes(32, "big")))
    digest = parse_transaction(transaction).digest
    assert coincurve.PublicKey(bytes.fromhex(out["public_key"])).verify(der, digest, hasher=None)
    assert Account.recover_transaction(bytes.fromhex(out["raw"])) == out["address"]


async def keygen(c, key_id="vault-1"):
    outcome = await c.run_job("keygen", {"key_id": key_id})
    assert outcome.ok, outcome.error
    return outcome.output


@pytest.mark.timeout(120)
@pytest.mark.parametrize("broker", BROKERS)
async def test_keygen_sign_presign(shared_cluster, broker):
    cluster = with_policies(shared_cluster(broker=broker))
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        key = await keygen(c, "vault-presign")
        signed = await c.run_job("sign", {"key_id": "vault-presign", "tx": tx(0)})
        assert signed.ok, signed.error
        verified_by_others(signed.output, tx(0))
        assert signed.output["address"] == key["address"]

        pre = await c.run_job("presign", {"key_id": "vault-presign", "count": 2})
        assert pre.ok and len(pre.output["ids"]) == 2
        only = pre.output["binding"].split(",")
        first = await c.run_job("sign", {"key_id": "vault-presign", "tx": tx(1),
                                         "presignature": pre.output["ids"][0]}, only=only)
        assert first.ok, first.error
        verified_by_others(first.output, tx(1))
        reuse = await c.run_job("sign", {"key_id": "vault-presign", "tx": tx(2),
                                         "presignature": pre.output["ids"][0]}, only=only)
        assert not reuse.ok and all(f"presignature {pre.output['ids'][0]} was already used"
                                    in v.reason for v in reuse.votes), reuse.votes
        second = await c.run_job("sign", {"key_id": "vault-presign", "tx": tx(2),
                                          "presignature": pre.output["ids"][1]}, only=only)
        assert second.ok, second.error  # the other one is still held, in memory
        verified_by_others(second.output, tx(2))
    assert not list(cluster.dir.rglob("presig*"))  # no presignature ever reached the disk


@pytest.mark.timeout(150)
@pytest.mark.parametrize("threshold, expect_ok", [(1, True), (2, False)])
async def test_five_parties_three_signers_follow_the_2t_plus_1_rule(make_cluster, threshold,
                                                                    expect_ok):
    """Four parties approve (the smallest policy quorum for n = 5, t = 1), three sign."""
    cluster = with_policies(make_cluster(parties=5, threshold=threshold, start=False))
    cluster.set_limits(policy_quorum=cluster.roster.min_policy_quorum)  # 4 (t=1), 5 (t=2)
    cluster.start()
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        await keygen(c)
        cluster.stop_node(1)
        await cluster.wait_offline(c, "party1")
        outcome = await c.run_job("sign", {"key_id": "vault-1", "tx": tx(0)}, vote_timeout=5,
                                  only=["party0", "party2", "party4"])
        assert outcome.ok == expect_ok, outcome.error
        if expect_ok:
            assert outcome.participants == ["party0", "party2", "party4"]
            verified_by_others(outcome.output, tx(0))
            two = await c.run_job("sign", {"key_id": "vault-1", "tx": tx(1)}, vote_timeout=5,
                                  only=["party0", "party2"])
            assert not two.ok and "only 2 of the 3 required parties" in two.error, two.error
        else:
            assert "only 4 of the 5 policy approvals required" in outcome.error


@pytest.mark.timeout(120)
async def test_policy_rejections_carry_reasons(shared_cluster):
    cluster = with_policies(shared_cluster())
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        await keygen(c, "vault-policy")
        first = await c.run_job("sign", {"key_id": "vault-policy", "tx": tx(0, value=9 * 10**17)})
        assert first.ok, first.error
        cases = [
            (tx(1, chainId=1), "policy: chain id 1 is not allowed"),
            (tx(1, to="0x2222222222222222222222222222222222222222"), "recipient"),
            (tx(1, data="0x095ea7b3" + "00" * 64), f"calls to {RECIPIENT} are not allowed"),
            (tx(1, gas=10**7), "over the fee limit"),
            (tx(1, value=2 * 10**18), "over the per-transaction limit for key vault-policy"),
            (tx(1, value=6 * 10**17), "policy: over the daily cap for key vault-policy"),
            (tx(0), "nonce 0 on chain 11155111 is already used by another transaction"),
        ]
        for transaction, reason in cases:
            outcome = await c.run_job("sign", {"key_id": "vault-policy", "tx": transaction})
            assert not outcome.ok
            reasons = [v.reason for v in outcome.votes]
            assert len(reasons) == 3 and all(reason in r for r in reasons), reasons


@pytest.mark.timeout(180)
async def test_refresh_commits_everywhere_and_a_missing_party_keeps_the_old_epoch(make_cluster):
    """A refresh is staged, committed and confirmed on every party in one run; without every
    party it commits nowhere and the key signs on at its epoch.  Crashes at each moment of
    the two phases are in test_crash_refresh."""
    cluster = with_policies(make_cluster(parties=4, threshold=1, start=False))
    cluster.set_limits(policy_quorum=3)  # signing goes on with a party down
    cluster.start()
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        key = await keygen(c)
        refreshed = await c.run_job("refresh", {"key_id": "vault-1", "epoch": 1})
        assert refreshed.ok and refreshed.output["committed"], refreshed.error
        for i in range(4):  # the old epoch is gone once every party confirmed the new one
            assert sorted(p.name for p in (cluster.dir / f"party{i}" / "data" / "keys" /
                                           "vault-1").glob("epoch-*")) == ["epoch-1.share"]
        cluster.stop_node(3, signal.SIGKILL)
        await cluster.wait_offline(c, "party3")
        again = await c.run_job("refresh", {"key_id": "vault-1", "epoch": 2}, vote_timeout=5)
        assert not again.ok and "only 3 of the 4 required" in again.error
        signed = await c.run_job("sign", {"key_id": "vault-1", "tx": tx(0)})
        assert signed.ok and signed.output["address"] == key["address"], signed.error
        verified_by_others(signed.output, tx(0))


@pytest.mark.timeout(120)
async def test_damaged_share_and_wrong_passphrase_are_refused_with_reasons(make_cluster):
    cluster = with_policies(make_cluster(parties=3, threshold=1))
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        await keygen(c)
        share_file = cluster.dir / "party0" / "data" / "keys" / "vault-1" / "epoch-0.share"
        original = share_file.read_bytes()
        doc = json.loads(original)
        doc["ciphertext"] = doc["ciphertext"][:-6] + ("AAAA" if doc["ciphertext"][-6:-2] != "AAAA"
                                                      else "BBBB") + doc["ciphertext"][-2:]
        share_file.write_text(json.dumps(doc))
        outcome = await c.run_job("sign", {"key_id": "vault-1", "tx": tx(0)})
        assert not outcome.ok
        assert "authentication failed" in outcome.votes[0].reason, outcome.votes[0]
        share_file.write_bytes(original)

        # a valid file whose share does not match the published verification share
        pdir = cluster.dir / "party1"
        store = KeyStore(pdir / "data" / "keys", (pdir / "passphrase").read_bytes().strip(),
                         cluster.roster.cluster_id, 1)
        meta, share = store.load("vault-1")
        store._write_share(meta, share + 1)
        outcome = await c.run_job("sign", {"key_id": "vault-1", "tx": tx(0)})
        assert "does not match this party's verification share" in outcome.votes[1].reason

    # the wrong passphrase: the node will not start, and the store will not open
    cluster.stop_node(2)
    (cluster.dir / "party2" / "passphrase").write_text("not-the-passphrase\n")
    cluster.start_node(2)
    assert cluster.nodes[2].wait(timeout=30) == 2
    assert "wrong passphrase" in cluster.log(2)


@pytest.mark.timeout(150)
async def test_key_commands_through_the_cli(shared_cluster, tmp_path):
    import asyncio
    import os
    import subprocess
    import sys

    cluster = with_policies(shared_cluster())

    def mpcnet(*args, env=None):
        return subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *args], text=True,
                              capture_output=True, timeout=60, env={**os.environ, **(env or {})})

    common = ["--dir", str(cluster.dir), "--broker", cluster.broker_url]
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
    made = await asyncio.to_thread(mpcnet, "keygen", *common, "--label", "Vault 1", "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["output"]
    assert key["key_id"] == "vault-1"
    tx_file = tmp_path / "tx.json"
    tx_file.write_text(json.dumps(tx(0)))
    signed = await asyncio.to_thread(mpcnet, "sign", *common, "--key", "vault-1", "--tx",
                                     str(tx_file), "--json")
    assert signed.returncode == 0, signed.stderr
    verified_by_others(json.loads(signed.stdout)["output"], tx(0))
    assert (await asyncio.to_thread(mpcnet, "presign", *common, "--key", "vault-1", "--count",
                                    "2")).returncode == 0
    tx_file.write_text(json.dumps(tx(1)))
    fast = await asyncio.to_thread(mpcnet, "sign", *common, "--key", "vault-1", "--tx",
                                   str(tx_file), "--presigned", "--json")
    assert fast.returncode == 0, fast.stderr
    verified_by_others(json.loads(fast.stdout)["output"], tx(1))
    refreshed = await asyncio.to_thread(mpcnet, "refresh", *common, "--key", "vault-1")
    assert refreshed.returncode == 0 and "epoch 1 committed" in refreshed.stdout

    listing = json.loads((await asyncio.to_thread(mpcnet, "keys", "list", "--dir",
                                                  str(cluster.dir), "--json")).stdout)
    vault = [k for keys in listing.values() for k in keys if k["key_id"] == "vault-1"]
    assert [k["epoch"] for k in vault] == [1, 1, 1]
    assert {k["address"] for k in vault} == {key["address"]}

    cfg = str(cluster.dir / "party0" / "node.yaml")
    env = {"MPCNET_BACKUP_PASSPHRASE": "correct horse"}
    backup = tmp_path / "party0.backup"
    out = await asyncio.to_thread(mpcnet, "keys", "export-backup", "--config", cfg, "--out",
                                  str(backup), env=env)
    assert out.returncode == 0 and out.stdout.startswith("backed up") and "vault-1" in out.stdout
    wrong = await asyncio.to_thread(mpcnet, "keys", "import-backup", "--config", cfg,
                                    "--backup", str(backup), env={"MPCNET_BACKUP_PASSPHRASE": "x"})
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr
    same = await asyncio.to_thread(mpcnet, "keys", "import-backup", "--config", cfg, "--backup",
                                   str(backup), env=env)
    assert same.returncode == 0 and "already present" in same.stdout


@pytest.mark.timeout(120)
async def test_a_job_for_another_clusters_key_is_refused(make_cluster):
    import shutil
    a = with_policies(make_cluster(parties=3, threshold=1))
    b = with_policies(make_cluster(parties=3, threshold=1))
    async with a.coordinator() as ca:
        await a.wait_online(ca)
        assert (await ca.run_job("keygen", {"key_id": "vault-a"})).ok
    async with b.coordinator() as cb:
        await b.wait_online(cb)
        asked = await cb.run_job("sign", {"key_id": "vault-a", "tx": tx(0)})
        assert not asked.ok and "only 0 of the 3 required parties" in asked.error, asked.error
        # no party takes part: each approves by its policy only, holding no share of it
        assert all(not v.participates and "holds no share of key vault-a" in v.reason
                   for v in asked.votes), asked.votes
        # even with cluster A's share files planted in B's stores, B's nodes refuse them
        for i in range(3):
            shutil.copytree(a.dir / f"party{i}" / "data" / "keys" / "vault-a",
                            b.dir / f"party{i}" / "data" / "keys" / "vault-a")
        planted = await cb.run_job("sign", {"key_id": "vault-a", "tx": tx(0)})
        assert not planted.ok
        reasons = [v.reason for v in planted.votes]
        assert all(not v.accept for v in planted.votes) and all(reasons), reasons
        print("\nplanted foreign share refused:", reasons[0])

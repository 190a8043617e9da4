"""FROST(Ed25519) threshold signatures end to end with real node processes and a real broker:
dealer-free keygen, signing with any t+1 parties (checked by OpenSSL and libsodium), a party
offline, a cheating party named and excluded, nonces that are never used twice, and the CLI;
preprocessed commitments (one job per signature), handed out once, and a restarted party's
dropped, the signature made with both rounds instead."""

import asyncio
import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.signing import VerifyKey

from keyshare import KeyStore
from mpc_nodes.client.ledger import Ledger
from mpc_nodes.jobs.frost import FrostSigningError, frost_keygen, frost_sign, preprocess
from tests.adversarial.harness import start_liar
from tests.cluster_harness import wait_until

pytestmark = pytest.mark.e2e
CHEAT = """
from nacl.bindings import crypto_core_ed25519_scalar_add
from mpc_nodes.wire.messages import output_digest
from protocols import frost

def lie(leaf, message, node):
    # a consistent liar: a wrong signature share, or preprocessed commitments all alike,
    # reported under its own digest
    if leaf != "results" or not message.ok:
        return message
    if set(message.output) == {"identifier", "share"}:
        z = crypto_core_ed25519_scalar_add(bytes.fromhex(message.output["share"]),
                                           frost.encode_identifier(1))
        output = {**message.output, "share": z.hex()}
    elif "commitments" in message.output:
        made = message.output["commitments"]
        output = {**message.output, "commitments": [made[0]] * len(made)}
    else:
        return message
    return message.model_copy(update={"output": output, "output_digest": output_digest(output)})
"""


def verified(result, message: bytes) -> None:
    """Independent checks: OpenSSL (cryptography) and libsodium (PyNaCl)."""
    pk, sig = bytes.fromhex(result["public_key"]), bytes.fromhex(result["signature"])
    Ed25519PublicKey.from_public_bytes(pk).verify(sig, message)
    VerifyKey(pk).verify(message, sig)


def store(cluster, i: int) -> KeyStore:
    pdir = cluster.dir / f"party{i}"
    return KeyStore(pdir / "data" / "keys", (pdir / "passphrase").read_bytes().strip(),
                    cluster.roster.cluster_id, i)


def mpcnet(*args):
    return subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *args], text=True,
                          capture_output=True, timeout=60)


@pytest.mark.timeout(60)
async def test_two_of_three_cli_offline_party_and_nonces(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    common = ["--dir", str(cluster.dir), "--broker", cluster.broker_url, "--json"]
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        made = await asyncio.to_thread(mpcnet, "keygen", *common, "--scheme", "frost-ed25519",
                                       "--label", "Oracle 1")
        assert made.returncode == 0, made.stderr
        key = json.loads(made.stdout)["output"]
        assert key["key_id"] == "oracle-1" and len(bytes.fromhex(key["public_key"])) == 32
        meta = store(cluster, 0).list_keys()[0]
        assert (meta["scheme"], meta["curve"], meta["address"], meta["purpose"]) == (
            "frost-ed25519", "ed25519", None, "raw")  # a raw-message key unless asked otherwise

        signed = await asyncio.to_thread(mpcnet, "sign", *common, "--key", "oracle-1",
                                         "--hex", "00ff", "--signers", "1,3")
        assert signed.returncode == 0, signed.stderr
        out = json.loads(signed.stdout)["output"]
        assert out["signers"] == ["party0", "party2"] and out["public_key"] == key["public_key"]
        verified(out, b"\x00\xff")

        for signers, names in ((None, ["party0", "party1"]), ([2, 3], ["party1", "party2"])):
            message = f"price report {signers}".encode()
            result = await frost_sign(c, "oracle-1", message, signers)
            assert result["signers"] == names and result["excluded"] == {}
            verified(result, message)

        # every nonce is used once and then gone; a replayed round two is refused
        only = ["party0", "party1"]

        async def commit(request):
            outcome = await c.run_job("frost-commit", {"key_id": "oracle-1", "request": request},
                                      only=only)
            assert outcome.ok, outcome.error
            return {"key_id": "oracle-1", "request": request, "message": "abcd",
                    "commitments": [outcome.party_outputs[n] for n in only]}
        params = await commit("00112233aabbccdd")
        first = await c.run_job("frost-sign", params, only=only)
        assert first.ok, first.error
        replay = await c.run_job("frost-sign", {**params, "message": "abce"}, only=only)
        assert not replay.ok
        assert all("was already used" in v.reason for v in replay.votes if v.party in only)
        assert not list(cluster.dir.rglob("presig*"))  # nonces never reach the disk

        # a list with a changed commitment of party0: no nonce is behind it, so none is burnt
        params = await commit("00112233aabbccde")
        own, other = params["commitments"]
        swapped = await c.run_job("frost-sign", {**params, "commitments": [
            {**own, "hiding": other["hiding"]}, other]}, only=only)
        votes = {v.party: v for v in swapped.votes}
        assert not swapped.ok and "unknown here" in votes["party0"].reason
        assert (await c.run_job("frost-sign", params, only=only)).ok  # the real one still signs

        ecdsa = await c.run_job("sign", {"key_id": "oracle-1", "tx": {}})
        assert not ecdsa.ok and "is a frost-ed25519 key" in ecdsa.votes[0].reason

        cluster.stop_node(1)
        await cluster.wait_offline(c, "party1")
        result = await frost_sign(c, "oracle-1", b"one party offline")
        assert result["signers"] == ["party0", "party2"]
        verified(result, b"one party offline")
        with pytest.raises(FrostSigningError) as failed:
            await frost_sign(c, "oracle-1", b"pinned to an offline party", [1, 2])
        assert "no vote" in failed.value.excluded["party1"]


@pytest.mark.timeout(60)
async def test_three_of_five_cheater_is_named_and_excluded(make_cluster):
    cluster = make_cluster(parties=5, threshold=2, start=False)
    cluster.start_broker()
    for i in (0, 2, 3, 4):
        cluster.start_node(i)
    start_liar(cluster, 1, CHEAT)
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        key = await frost_keygen(c, "oracle-5")
        assert key.ok, key.error

        result = await frost_sign(c, "oracle-5", b"eth-usd 3141.59")  # tries party0..party2
        assert result["attempts"] == 2 and result["signers"] == ["party0", "party2", "party3"]
        assert list(result["excluded"]) == ["party1"]
        assert "invalid signature share" in result["excluded"]["party1"]
        verified(result, b"eth-usd 3141.59")

        for signers in ([3, 4, 5], [1, 4, 5]):
            result = await frost_sign(c, "oracle-5", b"btc-usd", signers)
            assert result["identifiers"] == signers and result["attempts"] == 1
            verified(result, b"btc-usd")

        with pytest.raises(FrostSigningError) as failed:
            await frost_sign(c, "oracle-5", b"pinned to the cheater", [1, 2, 3])
        assert list(failed.value.excluded) == ["party1"]

        # the liar's commitments (all alike) are not recorded; the others sign in one job
        made = await preprocess(c, "oracle-5", 2)
        assert made.ok, made.error
        assert made.output["recorded"] == {"party0": 2, "party2": 2, "party3": 2, "party4": 2}
        assert "2 commitments (1 distinct)" in made.output["refused"]["party1"]
        result = await frost_sign(c, "oracle-5", b"sol-usd 201.7")
        assert result["preprocessed"] and result["attempts"] == 1
        assert result["signers"] == ["party0", "party2", "party3"]
        verified(result, b"sol-usd 201.7")
    assert not list(cluster.dir.rglob("presig*"))


def _ledger(cluster) -> Ledger:
    return Ledger(cluster.dir / "coordinator" / "coordinator.yaml")


def _dropped(cluster, key_id: str) -> dict[str, set[str]]:
    rows = _ledger(cluster).db.execute("SELECT party, reason FROM frost_commitments WHERE"
                                       " key_id = ? AND state = 'dropped'", (key_id,))
    found: dict[str, set[str]] = {}
    for party, reason in rows:
        found.setdefault(party, set()).add(reason)
    return found


async def _restart(cluster, c, i: int) -> str:
    """Restart party i (its in-memory nonces are gone); its new boot id once online."""
    old = c.presence[f"party{i}"].boot_id
    cluster.stop_node(i)
    cluster.start_node(i)
    await wait_until(lambda: (p := c.presence.get(f"party{i}")) is not None
                     and p.state == "online" and p.boot_id != old, 60, f"party{i} back")
    return c.presence[f"party{i}"].boot_id


@pytest.mark.timeout(120)
async def test_preprocessed_commitments_sign_in_one_job_once_each(make_cluster):
    cluster = make_cluster(parties=3, threshold=1)
    common = ["--dir", str(cluster.dir), "--broker", cluster.broker_url, "--json"]
    async with cluster.coordinator() as c:
        await cluster.wait_online(c)
        assert (await frost_keygen(c, "oracle-p")).ok

        made = await asyncio.to_thread(mpcnet, "presign", *common, "--key", "oracle-p",
                                       "--count", "3")
        assert made.returncode == 0, made.stderr
        out = json.loads(made.stdout)["output"]
        assert out["recorded"] == {"party0": 3, "party1": 3, "party2": 3} and not out["refused"]
        pools = await asyncio.to_thread(mpcnet, "keys", "presignatures", *common)
        assert json.loads(pools.stdout)["oracle-p"] == {
            "ready": 3, "dropped_now": [], "per_party": {"party0": 3, "party1": 3, "party2": 3}}
        plain = await asyncio.to_thread(mpcnet, "keys", "presignatures", *common[:-1])
        assert "oracle-p: 3 ready signatures (preprocessed commitments: party0 3, party1 3," \
               " party2 3)" in plain.stdout, plain.stdout + plain.stderr

        result = await frost_sign(c, "oracle-p", b"one job")
        assert result["preprocessed"] and len(result["jobs"]) == 1
        assert "frost-commit_s" not in result["timings"]
        verified(result, b"one job")

        # two signatures at once take distinct commitments (distinct nonce points R)
        a, b = await asyncio.gather(frost_sign(c, "oracle-p", b"first"),
                                    frost_sign(c, "oracle-p", b"second"))
        assert a["preprocessed"] and b["preprocessed"]
        verified(a, b"first")
        verified(b, b"second")
        assert len({result["signature"][:64], a["signature"][:64], b["signature"][:64]}) == 3
        taken = _ledger(cluster).db.execute(
            "SELECT COUNT(DISTINCT hiding) FROM frost_commitments WHERE state = 'taken'")
        assert taken.fetchone()[0] == 6  # three signatures by party0 and party1
        assert _ledger(cluster).commitments("oracle-p") == {"party2": 3}

        # a restarted party has lost its nonces: its entries are dropped before use and the
        # signature is made with both rounds
        made = await asyncio.to_thread(mpcnet, "presign", *common[:-1], "--key", "oracle-p",
                                       "--count", "2")
        assert made.returncode == 0, made.stderr
        assert "2 preprocessed commitments each for oracle-p from party0,party1,party2" \
            in made.stdout, made.stdout
        signed = await asyncio.to_thread(mpcnet, "sign", *common[:-1], "--key", "oracle-p",
                                         "--hex", "0102")
        assert signed.returncode == 0, signed.stderr
        assert "one job from preprocessed commitments" in signed.stdout, signed.stdout
        await _restart(cluster, c, 1)
        result = await frost_sign(c, "oracle-p", b"after a restart")
        assert not result["preprocessed"] and result["excluded"] == {}
        verified(result, b"after a restart")
        assert _dropped(cluster, "oracle-p") == {
            "party1": {"party1 restarted since (a restart discards its nonces)"}}

        # a coordinator that has not seen the restart offers the lost commitments: the
        # party refuses them, its entries are dropped, and both rounds sign instead
        made = await asyncio.to_thread(mpcnet, "presign", *common, "--key", "oracle-p",
                                       "--count", "2")
        assert made.returncode == 0, made.stderr
        boot = await _restart(cluster, c, 0)
        ledger = _ledger(cluster)
        with ledger._write() as db:  # as if recorded by the process now running
            db.execute("UPDATE frost_commitments SET boot = ? WHERE party = 'party0'", (boot,))
        result = await frost_sign(c, "oracle-p", b"refused commitment", [1, 2])
        assert not result["preprocessed"] and result["attempts"] == 2
        assert result["excluded"] == {}
        verified(result, b"refused commitment")
        assert any("unknown here (node restarted?)" in reason
                   for reason in _dropped(cluster, "oracle-p")["party0"])
        assert "party0" not in _ledger(cluster).commitments("oracle-p")
        assert (await frost_sign(c, "oracle-p", b"two rounds", [1, 2]))["preprocessed"] is False

        # --reconcile drops, by name, the commitments of a party that restarted since
        await _restart(cluster, c, 2)
        run = await asyncio.to_thread(mpcnet, "keys", "presignatures", *common, "--reconcile",
                                      "--key", "oracle-p")
        assert run.returncode == 0, run.stderr
        pool = json.loads(run.stdout)["oracle-p"]
        assert {d["reason"] for d in pool["dropped_now"]} == {
            "party2 restarted since (a restart discards its nonces)"}
        assert len(pool["dropped_now"]) == 3 + 2 + 2 and "party2" not in pool["per_party"]
        assert all(len(d["id"]) == 16 for d in pool["dropped_now"])

        # by default, t+1 signers with preprocessed commitments are preferred
        made = await asyncio.to_thread(mpcnet, "presign", *common, "--key", "oracle-p",
                                       "--count", "1")
        assert made.returncode == 0, made.stderr
        _ledger(cluster).drop_commitments("oracle-p", "party0", "test: party0's pool used up")
        result = await frost_sign(c, "oracle-p", b"the stocked signers")
        assert result["preprocessed"] and result["signers"] == ["party1", "party2"]
        verified(result, b"the stocked signers")
    assert not list(cluster.dir.rglob("presig*"))

"""FROST(Ed25519) threshold signatures end to end with real node processes and a real broker:
dealer-free keygen, signing with any t+1 parties (checked by OpenSSL and libsodium), a party
offline, a cheating party named and excluded, nonces that are never used twice, and the CLI."""

import asyncio
import json
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl.signing import VerifyKey

from keyshare import KeyStore
from mpc_nodes.jobs.frost import FrostSigningError, frost_keygen, frost_sign
from tests.adversarial.harness import start_liar

pytestmark = pytest.mark.e2e
CHEAT = """
from nacl.bindings import crypto_core_ed25519_scalar_add
from mpc_nodes.wire.messages import output_digest
from protocols import frost

def lie(leaf, message, node):
    # a consistent liar: a wrong signature share, reported under its own digest
    if leaf != "results" or not message.ok or set(message.output) != {"identifier", "share"}:
        return message
    z = crypto_core_ed25519_scalar_add(bytes.fromhex(message.output["share"]),
                                       frost.encode_identifier(1))
    output = {**message.output, "share": z.hex()}
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
    assert not list(cluster.dir.rglob("presig*"))

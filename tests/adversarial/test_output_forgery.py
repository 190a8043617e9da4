"""Item 2: one party cannot replace the agreed output.

party0 — the first participant, whose output the coordinator used to return — runs as a
lying node: after an honest run it reports a forged output (its own vault key with
consistent verification shares, a planted aggregate, planted prices) under the digest of
the honest output.  The job must fail naming party0, and the coordinator must record
nothing of the forgery.  Independent code (coincurve, PyNaCl, eth-account) makes the
attacker's key and checks the consistency rule.
"""

import json
import subprocess
import sys

import coincurve
import pytest
from eth_account import Account
from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

from mpc_nodes.jobs.keycheck import key_problem
from mpc_nodes.client.ledger import Ledger
from mpc_nodes.jobs.options_csv import parse_options
from mpc_nodes.jobs.pricing import price_params, run_price
from tests.adversarial.harness import start_liar
from tests.cluster_harness import LocalCluster

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
L = 2**252 + 27742317777372353535851937790883648493
ATTACKER = 0x5EC2E7  # the lying operator's own vault key
PLANTED = 4242.0

# After an honest run, party0 reports its forgery: the first of each kind of output (an
# ECDSA key, a FROST key, an aggregate, prices) under the honest output's digest, later ones
# under the forgery's own digest.
LIAR = f"""
import secrets

import coincurve
from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

from mpc_nodes.jobs.ecdsa import eth_address
from mpc_nodes.wire.messages import output_digest

N, L, SECRET, PLANTED = {N}, {L}, {ATTACKER}, {PLANTED}
lies = {{}}  # kind of output -> forgeries of it so far


def forged_key(out):
    coeffs = [SECRET] + [secrets.randbelow(N) for _ in range(out["t"])]
    f = lambda x: sum(c * x ** k for k, c in enumerate(coeffs))
    if out["scheme"] == "ecdsa-secp256k1":
        pt = lambda s: coincurve.PrivateKey.from_int(s % N).public_key.format().hex()
        pk = pt(SECRET)
        return out | {{"public_key": pk, "address": eth_address(pk),
                      "verification_shares": [pt(f(j)) for j in range(1, out["n"] + 1)]}}
    pt = lambda s: crypto_scalarmult_ed25519_base_noclamp((s % L).to_bytes(32, "little")).hex()
    return out | {{"public_key": pt(SECRET),
                  "verification_shares": [pt(f(j)) for j in range(1, out["n"] + 1)]}}


def forge(out):
    if "verification_shares" in out:
        return forged_key(out)
    if "value" in out:
        return out | {{"value": PLANTED}}
    values = out["values"]
    return out | {{"values": values | {{"price": [PLANTED] * len(values["price"])}}}}


def lie(leaf, message, node):
    if leaf != "results" or not message.ok:
        return message
    kind = message.output.get("scheme") or ("value" if "value" in message.output else "values")
    lies[kind] = lies.get(kind, 0) + 1
    out = forge(message.output)
    digest = message.output_digest if lies[kind] == 1 else output_digest(out)
    return message.model_copy(update={{"output": out, "output_digest": digest}})
"""

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def liar_cluster(tmp_path_factory):
    """Three parties, t = 1; party0 is the liar.  The module's tests share it: each uses key
    ids and inputs of its own, and the liar counts its forgeries per kind of output."""
    cluster = LocalCluster(tmp_path_factory.mktemp("liar"), 3, 1)
    try:
        cluster.start_broker()
        for i in (1, 2):
            cluster.start_node(i)
        start_liar(cluster, 0, LIAR)
        yield cluster
    finally:
        cluster.close()


def attacker_public(scheme: str) -> str:
    if scheme == "ecdsa-secp256k1":
        return coincurve.PrivateKey.from_int(ATTACKER).public_key.format().hex()
    return crypto_scalarmult_ed25519_base_noclamp(ATTACKER.to_bytes(32, "little")).hex()


def assert_names_the_liar(outcome: dict) -> None:
    assert not outcome["ok"], outcome
    assert list(outcome["party_errors"]) == ["party0"], outcome
    assert "party0" in outcome["error"]


@pytest.mark.parametrize("scheme", ["ecdsa-secp256k1", "frost-ed25519"])
async def test_a_forged_keygen_output_fails_and_is_not_recorded(liar_cluster, curious_factory,
                                                               scheme):
    cluster, label = liar_cluster, f"vault-{scheme[:5]}"
    async with curious_factory(cluster):  # all three online
        pass
    run = subprocess.run(
        [sys.executable, "-m", "mpc_nodes.cli.app", "keygen", "--dir", str(cluster.dir),
         "--scheme", scheme, "--label", label, "--broker", cluster.broker_url, "--json"],
        capture_output=True, text=True, timeout=180)
    assert run.returncode == 1, run.stdout + run.stderr
    outcome = json.loads(run.stdout)
    assert_names_the_liar(outcome)
    assert "output digest" in outcome["party_errors"]["party0"]
    recorded = json.dumps(Ledger(cluster.dir / "coordinator" / "coordinator.yaml").data)
    assert label not in recorded
    assert attacker_public(scheme) not in recorded
    assert Account.from_key(ATTACKER.to_bytes(32, "big")).address not in recorded


async def test_a_planted_aggregate_fails_naming_the_liar(liar_cluster, curious_factory):
    cluster = liar_cluster
    for i in range(3):
        (cluster.dir / f"party{i}" / "inputs.yaml").write_text(f"x: {i + 1}\n")
    async with curious_factory(cluster) as cc:
        honest_digest = await cc.run("aggregate", {"input": "x", "method": "mean"})
        own_digest = await cc.run("aggregate", {"input": "x", "method": "mean"})
    for outcome in (honest_digest, own_digest):
        assert_names_the_liar(outcome.as_dict())
        assert outcome.output is None
    assert "output digest" in honest_digest.party_errors["party0"]
    assert "disagrees with" in own_digest.party_errors["party0"]


async def test_planted_prices_fail_naming_the_liar(liar_cluster, curious_factory):
    cluster = liar_cluster
    book = parse_options("type,strike,expiry\ncall,3000,0.25\nput,2800,0.5\n")
    async with curious_factory(cluster) as cc:
        outcome = await run_price(cc.c, price_params(book, "ETH", 3000.0, 0.03))
    assert_names_the_liar(outcome.as_dict())
    assert outcome.output is None


# -- the consistency rule itself, against keys made with independent code ----------------

def _shares(secret: int, coeffs: list[int], n: int, modulus: int) -> list[int]:
    return [sum(c * j ** k for k, c in enumerate([secret, *coeffs])) % modulus
            for j in range(1, n + 1)]


def _ecdsa_key(n=5, t=2):
    shares = _shares(0xC0FFEE, [0xBEEF, 0xF00D][:t], n, N)
    point = lambda s: coincurve.PrivateKey.from_int(s).public_key.format().hex()
    pk = point(0xC0FFEE)
    return shares, {"scheme": "ecdsa-secp256k1", "public_key": pk, "n": n, "t": t,
                    "address": Account.from_key((0xC0FFEE).to_bytes(32, "big")).address,
                    "verification_shares": [point(s) for s in shares]}, point


def _frost_key(n=5, t=2):
    shares = _shares(0xC0FFEE, [0xBEEF, 0xF00D][:t], n, L)
    point = lambda s: crypto_scalarmult_ed25519_base_noclamp(s.to_bytes(32, "little")).hex()
    return shares, {"scheme": "frost-ed25519", "public_key": point(0xC0FFEE), "n": n, "t": t,
                    "address": None, "verification_shares": [point(s) for s in shares]}, point


@pytest.mark.parametrize("make", [_ecdsa_key, _frost_key], ids=["ecdsa", "frost"])
def test_consistency_rule_on_independently_made_keys(make):
    shares, key, point = make()
    names = [f"party{i}" for i in range(5)]
    assert key_problem(key, names, t=2) is None
    for j, share in enumerate(shares):
        assert key_problem(key, names, t=2, own=(j, share)) is None
    for j in range(5):  # any one party's verification share, off by one, is named
        wrong = dict(key, verification_shares=list(key["verification_shares"]))
        wrong["verification_shares"][j] = point(shares[j] + 1)
        assert f"party{j}'s verification share" in key_problem(wrong, names, t=2)
    assert "does not match" in key_problem(key, names, t=2, own=(3, shares[3] + 1))
    assert key_problem(key, names, t=1) is not None  # a degree-2 key is not a 2-of-5 key
    assert key_problem(key | {"public_key": point(0xC0FFEF)}, names, t=2) is not None
    assert key_problem(key, names[:4], t=2) is not None
    if key["address"]:
        other = Account.from_key((0xC0FFEF).to_bytes(32, "big")).address
        assert "address" in key_problem(key | {"address": other}, names, t=2)

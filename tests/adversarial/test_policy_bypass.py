"""Signing-policy bypasses (issue 10, item 4, and the vote reasons of item 9), each run as an
attacker would: a requester that controls the transaction JSON, and a curious coordinator
that picks any subset of parties to sign with.

Each test failed on the code before the fix: ERC-20 calls were checked on their first 4
bytes only, fees counted toward no cap, nonces of 2**64 and wrong EIP-55 checksums passed,
caps and nonces were kept per node (so disjoint subsets each spent the full cap and reused
a nonce), and refusals quoted the policy's state.
"""

import asyncio
import json

import pytest
import yaml
from eth_abi import encode
from eth_account import Account

from mpc_nodes.wire import topics
from mpc_nodes.config import ConfigError, load_roster, load_yaml_model
from mpc_nodes.jobs.evm import EvmError, parse_transaction
from mpc_nodes.wire.messages import JobStart
from mpc_nodes.jobs.policy import Policy, PolicyCheck, PolicyState

CHAIN = 11155111
TOKEN = "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"
PAYEE = "0x1111111111111111111111111111111111111111"
PAYEE2 = "0x2222222222222222222222222222222222222222"
SPENDER = "0x3333333333333333333333333333333333333333"
ATTACKER = "0x000000000000000000000000000000000000bEEF"
GWEI = 10**9
ETH = 10**18
POLICY = f"""version: 2
chain_ids: [{CHAIN}]
eth:
  recipients: ["{PAYEE}", "{PAYEE2}"]
  max_fee_wei: {10**16}
  max_per_tx_wei: {ETH}
  daily_cap_wei: {ETH}
tokens:
  - chain_id: {CHAIN}
    address: "{TOKEN}"
    recipients: ["{PAYEE}"]
    spenders: ["{SPENDER}"]
    max_per_tx: 1000000
    daily_cap: 1500000
"""


def tx(nonce=0, to=PAYEE, value=0, data="0x", gas=21000, fee=30 * GWEI, **changes):
    return {"chainId": CHAIN, "nonce": nonce, "to": to, "value": value, "data": data,
            "gas": gas, "maxFeePerGas": fee, "maxPriorityFeePerGas": GWEI, **changes}


def call(signature: str, types: list[str], args: list) -> str:
    from eth_utils import function_signature_to_4byte_selector
    return "0x" + (function_signature_to_4byte_selector(signature) + encode(types, args)).hex()


def transfer(to, amount):
    return call("transfer(address,uint256)", ["address", "uint256"], [to, amount])


@pytest.fixture
def check(tmp_path):
    (tmp_path / "policy.yaml").write_text(POLICY)
    return PolicyCheck(load_yaml_model(tmp_path / "policy.yaml", Policy),
                       PolicyState(tmp_path / "state.sqlite"), tmp_path / "policy.yaml")


def refused(check, transaction, key="vault-1"):
    decision = check.reserve(parse_transaction(transaction), key)
    assert not decision.accept, f"the policy allowed {transaction}"
    return decision


# -- 1. calldata is decoded --------------------------------------------------------------------

def test_erc20_calls_are_decoded_not_just_their_selector(check):
    assert check.reserve(parse_transaction(tx(0, TOKEN, data=transfer(PAYEE, 10**6))),
                         "vault-1").accept
    assert "transfer to" in refused(check, tx(1, TOKEN, data=transfer(ATTACKER, 1))).reason
    assert "per-transaction limit of token" in refused(
        check, tx(1, TOKEN, data=transfer(PAYEE, 2**256 - 1))).reason
    assert "daily cap of token" in refused(check, tx(1, TOKEN, data=transfer(PAYEE, 6 * 10**5))
                                           ).reason
    approve = call("approve(address,uint256)", ["address", "uint256"], [ATTACKER, 2**256 - 1])
    assert "approve spender" in refused(check, tx(1, TOKEN, data=approve)).reason
    pull = call("transferFrom(address,address,uint256)", ["address", "address", "uint256"],
                [SPENDER, PAYEE, 1])
    assert "transferFrom from" in refused(check, tx(1, TOKEN, data=pull)).reason
    unknown = "0x40c10f19" + transfer(PAYEE, 1)[10:]  # mint(address,uint256)
    assert "not an ERC-20 transfer" in refused(check, tx(1, TOKEN, data=unknown)).reason
    assert "calls to" in refused(check, tx(1, PAYEE, data=transfer(PAYEE, 1))).reason
    assert "no ETH value" in refused(check, tx(1, TOKEN, value=1, data=transfer(PAYEE, 1))
                                     ).reason


@pytest.mark.parametrize("tamper", [
    lambda d: d + "00" * 32,                                   # trailing word
    lambda d: d + "ff",                                        # trailing byte
    lambda d: d[:10] + "ff" * 12 + d[34:],                     # dirty address padding
    lambda d: d[:-2],                                          # short
])
def test_non_canonical_calldata_is_refused(check, tamper):
    data = tamper(transfer(PAYEE, 5))
    assert "calldata refused" in refused(check, tx(0, TOKEN, data=data)).reason


def test_a_version_1_policy_is_refused_with_a_reason(tmp_path):
    old = tmp_path / "policy.yaml"
    old.write_text(f'chain_ids: [1]\nrecipients: ["{TOKEN}"]\nselectors: ["0xa9059cbb"]\n'
                   "max_value_wei: 1\ndaily_cap_wei: 1\n")
    with pytest.raises(ConfigError, match="version 1 checked only the first 4 bytes"):
        load_yaml_model(old, Policy)


# -- 2. fees count ------------------------------------------------------------------------------

def test_fees_are_capped_and_count_toward_value_caps(check):
    huge = tx(0, TOKEN, data=transfer(PAYEE, 1), gas=30_000_000, fee=10**15)
    assert "over the fee limit" in refused(check, huge).reason
    # value alone is within the 1 ETH per-transaction limit; value + max fee is not
    assert "per-transaction limit for key" in refused(check, tx(0, value=ETH)).reason
    assert check.reserve(parse_transaction(tx(0, value=ETH - 10**16)), "vault-1").accept
    # values 0.99 + 0.009 ETH fit the 1 ETH daily cap; with the two max fees of 0.00063 ETH
    # they do not
    assert "daily cap for key" in refused(check, tx(1, value=9 * 10**15)).reason


# -- 3. EIP-2681 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("nonce", [2**64 - 1, 2**64, 2**256 - 1])
def test_nonces_from_2_64_minus_1_are_refused(nonce):
    with pytest.raises(EvmError, match="EIP-2681"):
        parse_transaction(tx(nonce))
    assert parse_transaction(tx(2**64 - 2)).nonce == 2**64 - 2


# -- 4. EIP-55 ----------------------------------------------------------------------------------

def test_a_wrong_eip55_checksum_is_refused_in_transactions_and_policies(tmp_path):
    wrong = "0x" + TOKEN[2:].swapcase()  # mixed case, every letter flipped
    with pytest.raises(EvmError, match="EIP-55"):
        parse_transaction(tx(0, wrong))
    assert parse_transaction(tx(0, TOKEN.lower())).to == TOKEN  # unchecksummed is fine
    assert parse_transaction(tx(0, "0x" + TOKEN[2:].upper())).to == TOKEN
    (tmp_path / "policy.yaml").write_text(POLICY.replace(PAYEE2, wrong))
    with pytest.raises(ConfigError, match="EIP-55"):
        load_yaml_model(tmp_path / "policy.yaml", Policy)


# -- 6. refusals name the rule, not the policy's state -----------------------------------------

def test_refusals_name_the_rule_but_not_the_caps_spending_or_lists(check):
    assert check.reserve(parse_transaction(tx(0, value=9 * 10**17)), "vault-1").accept
    secrets_of_the_policy = [str(ETH), str(10**16), "900630000000000000", "1000000", "1500000",
                             PAYEE.lower(), PAYEE2.lower(), SPENDER.lower()]
    decisions = [refused(check, t) for t in (
        tx(1, value=2 * 10**17), tx(1, value=2 * ETH), tx(1, ATTACKER, value=1),
        tx(1, gas=10**7, fee=10**10), tx(0, value=1), tx(1, chainId=1),
        tx(1, TOKEN, data=transfer(PAYEE, 2 * 10**6)))]
    for d in decisions:
        assert not any(s in d.reason.lower() for s in secrets_of_the_policy), d.reason
    assert decisions[0].reason == "over the daily cap for key vault-1"
    assert "900630000000000000 spent" in decisions[0].detail  # the particulars: the log


# -- 5. caps and nonces hold network-wide ------------------------------------------------------

async def raw_votes(cc, kind, params):
    """An attacker's view: request a job and keep the parties' signed votes."""
    req, raw, digest = cc.request(kind, params)
    cc.c._votes[req.job_id] = asyncio.Queue()
    cc.c._results[req.job_id] = asyncio.Queue()
    await cc.c.bus.publish(topics.jobs(cc.cluster.roster.cluster_id), raw)
    votes = await cc.c._collect_votes(req.job_id, digest, 5.0)
    return req, digest, votes


@pytest.mark.e2e
@pytest.mark.timeout(400)
async def test_rotating_subsets_cannot_exceed_the_cap_or_reuse_a_nonce(make_cluster,
                                                                       curious_factory):
    # n = 6, t = 1: two disjoint signing sets of 2t+1 = 3 parties each
    cluster = make_cluster(parties=6, threshold=1, start=False)
    for i in range(6):
        (cluster.dir / f"party{i}" / "policy.yaml").write_text(POLICY)
    cluster.start()
    first, second = ["party0", "party1", "party2"], ["party3", "party4", "party5"]
    async with curious_factory(cluster) as cc:
        assert (await cc.run("keygen", {"key_id": "vault-1"})).ok
        a = tx(0, PAYEE, 9 * 10**17)
        signed = await cc.run("sign", {"key_id": "vault-1", "tx": a}, participants=first)
        assert signed.ok, signed.error
        assert Account.recover_transaction(signed.output["raw"]) == signed.output["address"]

        # the same nonce, another payee, signed by the other half of the network
        b = tx(0, PAYEE2, 9 * 10**17)
        reused = await cc.run("sign", {"key_id": "vault-1", "tx": b}, participants=second)
        assert not reused.ok and len(reused.votes) == 6
        assert all("nonce 0 on chain" in v.reason for v in reused.votes), reused.votes

        # a fresh nonce: the other half has already seen the 0.9 ETH spent
        c = tx(1, PAYEE2, 9 * 10**17)
        over = await cc.run("sign", {"key_id": "vault-1", "tx": c}, participants=second)
        assert not over.ok
        assert {v.reason for v in over.votes} == {"policy: over the daily cap for key vault-1"}
        await cluster.wait_log(3, "spent in 24 h")  # the particulars stay in the log

        # the identical transaction again is a retry: signed, and not counted twice
        again = await cc.run("sign", {"key_id": "vault-1", "tx": a}, participants=second)
        assert again.ok, again.error
        assert again.output["digest"] == signed.output["digest"]
        small = await cc.run("sign", {"key_id": "vault-1", "tx": tx(1, value=5 * 10**16)},
                             participants=second)
        assert small.ok, small.error

        # with a party away the coordinator cannot gather the quorum; a start forged with
        # the approvals it has is refused by every participant
        cluster.stop_node(5)
        await cluster.wait_offline(cc.c, "party5")
        d = tx(2, value=10**15)
        refused_job = await cc.run("sign", {"key_id": "vault-1", "tx": d}, participants=first)
        assert not refused_job.ok and "policy approvals" in refused_job.error
        req, digest, votes = await raw_votes(cc, "sign", {"key_id": "vault-1", "tx": tx(3)})
        assert len(votes) == 5 and all(m.accept for _, m, _ in votes.values())
        await cc.publish(JobStart(job_id=req.job_id, request_digest=digest,
                                  votes=[raw.decode() for _, _, raw in votes.values()],
                                  participants=first))
        results = await cc.c._collect_results(req.job_id, digest, first, 30.0)
        assert set(results) == set(first)
        assert all(not r.ok and "5 approvals, 6 required" in r.error
                   for r in results.values()), results


def test_the_policy_quorum_must_keep_nonces_unique(tmp_path):
    from mpc_nodes.deploy.cluster import init_cluster
    roster = init_cluster(tmp_path / "c", parties=5, threshold=1)
    assert roster.policy_quorum == 5 and roster.min_policy_quorum == 4
    data = yaml.safe_load((tmp_path / "c" / "roster.yaml").read_text())
    data["limits"] = {"policy_quorum": 3}  # two quorums of 3 out of 5 may share one party
    (tmp_path / "c" / "roster.yaml").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="policy_quorum 3 must be between 4 and 5"):
        load_roster(tmp_path / "c" / "roster.yaml")

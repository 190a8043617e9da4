"""EIP-1559 encoding checked against eth-account, transaction validation errors, and the
signing policy with its persisted state."""

import json
import sqlite3
import time

import coincurve
import pytest
from eth_account import Account
from hypothesis import given
from hypothesis import strategies as st

from mpc_nodes.jobs.evm import EvmError, parse_transaction, signed_transaction
from mpc_nodes.jobs.policy import Policy, PolicyCheck, PolicyState

TO = "0x1111111111111111111111111111111111111111"
TX = {"chainId": 11155111, "nonce": 7, "to": TO, "value": "0x2386f26fc10000",
      "data": "0xa9059cbb" + "00" * 64, "gasLimit": "60000", "maxFeePerGas": 30 * 10**9,
      "maxPriorityFeePerGas": 10**9}


def test_digest_and_raw_transaction_match_eth_account():
    account = Account.create()
    tx = parse_transaction(TX)
    reference = account.sign_transaction({**tx.fields})
    sig = coincurve.PrivateKey(account.key).sign_recoverable(tx.digest, hasher=None)
    raw, tx_hash = signed_transaction(tx, int.from_bytes(sig[:32], "big"),
                                      int.from_bytes(sig[32:64], "big"), sig[64])
    assert raw == bytes(reference.raw_transaction) and tx_hash == bytes(reference.hash)
    assert Account.recover_transaction(raw) == account.address


@pytest.mark.parametrize("change, message", [
    ({"chainId": "abc"}, "field chainId must be an integer"),
    ({"nonce": -1}, "field nonce out of range"),
    ({"to": "0x1234"}, "field to is not an address"),
    ({"to": None}, "field to is required"),
    ({"data": "0xabc"}, "whole bytes"),
    ({"gas": 21000}, "gas or gasLimit, not both"),
    ({"type": 1}, "only EIP-1559"),
    ({"maxPriorityFeePerGas": 10**12}, "exceeds maxFeePerGas"),
    ({"surprise": 1}, "unknown field(s): surprise"),
    ({"value": True}, "field value must be an integer"),
    ({"nonce": 2**64 - 1}, "EIP-2681"),
    ({"to": "0xaBcDeF0000000000000000000000000000000000"}, "wrong EIP-55 checksum"),
])
def test_invalid_transactions_name_the_field(change, message):
    with pytest.raises(EvmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_transaction({**TX, **change})


@given(st.dictionaries(st.sampled_from(sorted(TX) + ["gas", "type", "accessList", "x"]),
                       st.none() | st.booleans() | st.integers() | st.text(max_size=50)
                       | st.lists(st.integers(), max_size=2), max_size=9))
def test_transaction_parser_only_raises_evm_error(tx):
    try:
        parse_transaction(tx)
    except EvmError as exc:
        assert str(exc)


def policy(tmp_path):
    p = Policy.model_validate({
        "version": 2, "chain_ids": [11155111],
        "eth": {"recipients": [TO], "max_fee_wei": 10**16, "max_per_tx_wei": 10**17,
                "daily_cap_wei": 2 * 10**16},
        "tokens": [{"chain_id": 11155111, "address": TO, "recipients": [TO],
                    "max_per_tx": 10**6, "daily_cap": 10**6}]})
    state = PolicyState(tmp_path / "policy_state.sqlite", legacy=tmp_path / "state.json")
    return PolicyCheck(p, state, tmp_path / "policy.yaml")


def test_policy_decisions_and_state_survive_a_reload(tmp_path):
    check = policy(tmp_path)
    plain = parse_transaction({**TX, "data": "0x"})  # 0.01 ETH + at most 0.0018 ETH of fees
    assert check.reserve(plain, "k").accept
    again = policy(tmp_path)  # a restart: state re-read from disk
    assert again.check(plain, "k").accept  # the identical transaction: a retry, not counted
    other = parse_transaction({**TX, "data": "0x", "value": 1})
    assert "nonce 7 on chain 11155111 is already used" in again.check(other, "k").reason
    assert again.check(other, "other-key").accept
    over_cap = parse_transaction({**TX, "nonce": 8, "data": "0x", "value": 10**16})
    assert again.check(over_cap, "k").reason == "over the daily cap for key k"
    assert "transfer to" in again.check(parse_transaction({**TX, "nonce": 9, "value": 0}),
                                        "k").reason  # TX's calldata pays the zero address
    refusal = PolicyCheck(None, again.state, tmp_path / "x").check(plain, "k")
    assert refusal.reason == "this node has no valid signing policy"
    assert str(tmp_path / "x") in refusal.detail


def test_version_1_state_is_kept_and_its_nonces_stay_used(tmp_path):
    (tmp_path / "state.json").write_text(json.dumps(
        {"nonces": {"k:11155111": [7]}, "spend": [[time.time(), "k", 10**16]]}))
    check = policy(tmp_path)
    plain = parse_transaction({**TX, "data": "0x"})
    assert "nonce 7 on chain 11155111 is already used" in check.check(plain, "k").reason
    spent = parse_transaction({**TX, "nonce": 8, "data": "0x", "value": 10**16 - 10**15})
    assert check.check(spent, "k").reason == "over the daily cap for key k"


def test_a_json_state_is_imported_once_and_a_bound_nonce_is_never_rebound(tmp_path):
    """The JSON state of earlier versions moves into the database once (renamed
    .migrated; opening again imports nothing twice); the database is 0600; a nonce bound to
    one transaction cannot be bound to another even past the policy check."""
    now = time.time()
    (tmp_path / "state.json").write_text(json.dumps(
        {"version": 2, "nonces": {"k:11155111": {"7": "ab" * 32}},
         "spend": [[now - 10, "k", "eth", 10**16 - 10**15, "ab" * 32],
                   [now - 2 * 86400, "k", "eth", 10**16, "cd" * 32]]}))
    check = policy(tmp_path)
    assert not (tmp_path / "state.json").exists()
    assert (tmp_path / "state.json.migrated").exists()
    assert check.state.spent_last_day("k", "eth", now, besides="") == 10**16 - 10**15
    assert check.state.bound_digest("k", 11155111, 7) == "ab" * 32
    (tmp_path / "state.json").write_text((tmp_path / "state.json.migrated").read_text())
    again = policy(tmp_path)  # a crash before the rename: the marker stops a second import
    assert again.state.spent_last_day("k", "eth", now, besides="") == 10**16 - 10**15
    assert (tmp_path / "policy_state.sqlite").stat().st_mode & 0o777 == 0o600
    plain = parse_transaction({**TX, "data": "0x"})  # nonce 7, another digest
    assert "nonce 7 on chain 11155111 is already used" in again.check(plain, "k").reason
    with pytest.raises(sqlite3.IntegrityError):
        again.state.reserve("k", plain, {"eth": 1}, now)
    assert again.state.bound_digest("k", 11155111, 7) == "ab" * 32
    assert again.state.spent_last_day("k", "eth", now, besides="") == 10**16 - 10**15


def test_an_edited_policy_applies_to_the_next_check_though_parsed_policies_are_kept(
        tmp_path, monkeypatch):
    """load_policy keeps a parsed policy while its file is unchanged and settled; an edit,
    even one of the same size, is read again, and a file changed in the last SETTLED_S is
    read every time (file times are coarser than two quick writes)."""
    from types import SimpleNamespace

    from mpc_nodes.jobs import policy as policy_module
    text = ("version: 2\nchain_ids: [11155111]\n"
            "eth: {recipients: ['%s'], max_fee_wei: 10000000000000000,"
            " max_per_tx_wei: 100000000000000000, daily_cap_wei: 20000000000000000}\n" % TO)
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    ctx = SimpleNamespace(config_path=tmp_path / "node.yaml",
                          config=SimpleNamespace(policy="policy.yaml", data_dir="."))
    plain = parse_transaction({**TX, "data": "0x"})
    first = policy_module.load_policy(ctx)
    assert first.check(plain, "k").accept
    assert policy_module.load_policy(ctx).policy is not first.policy  # fresh: parsed again
    monkeypatch.setattr(policy_module, "SETTLED_S", 0.0)
    settled = policy_module.load_policy(ctx)
    assert policy_module.load_policy(ctx).policy is settled.policy  # unchanged: kept
    time.sleep(0.05)
    path.write_text(text.replace("11155111", "11155112"))  # same size
    assert policy_module.load_policy(ctx).check(plain, "k").reason == \
        "chain id 11155111 is not allowed"

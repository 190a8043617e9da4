"""EIP-1559 encoding checked against eth-account, transaction validation errors, and the
signing policy with its persisted state."""

import coincurve
import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from mpc_nodes.evm import EvmError, parse_transaction, signed_transaction
from mpc_nodes.policy import Policy, PolicyCheck, PolicyState

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
])
def test_invalid_transactions_name_the_field(change, message):
    with pytest.raises(EvmError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_transaction({**TX, **change})


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(TX) + ["gas", "type", "accessList", "x"]),
                       st.none() | st.booleans() | st.integers() | st.text(max_size=50)
                       | st.lists(st.integers(), max_size=2), max_size=9))
def test_transaction_parser_only_raises_evm_error(tx):
    try:
        parse_transaction(tx)
    except EvmError as exc:
        assert str(exc)


def policy(tmp_path, **overrides):
    p = Policy(**{"chain_ids": [11155111], "recipients": [TO], "selectors": ["0xa9059cbb"],
                  "allow_plain_transfers": False, "max_value_wei": 10**17,
                  "daily_cap_wei": 2 * 10**16, **overrides})
    return PolicyCheck(p, PolicyState(tmp_path / "state.json"), tmp_path / "policy.yaml")


def test_policy_decisions_and_state_survive_a_reload(tmp_path):
    check = policy(tmp_path)
    tx = parse_transaction(TX)  # value 0.01 ETH
    assert check.check(tx, "k").accept
    check.record(tx, "k")
    again = policy(tmp_path)  # a restart: state re-read from disk
    assert "nonce 7 on chain 11155111 was already signed" in again.check(tx, "k").reason
    assert again.check(parse_transaction({**TX, "nonce": 7}), "other-key").accept
    over_cap = parse_transaction({**TX, "nonce": 8, "value": 2 * 10**16})
    assert "over the daily cap" in again.check(over_cap, "k").reason
    plain = parse_transaction({**TX, "nonce": 9, "data": "0x"})
    assert "plain transfers" in again.check(plain, "k").reason
    assert "no signing policy" in PolicyCheck(None, again.state, tmp_path / "x").check(
        tx, "k").reason

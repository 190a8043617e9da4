"""The node-side pieces of settlement without a cluster: the settlement functions the policy
decodes are the compiled contract's, the policy's contract and typed-data rules, and how a
node builds a mark from a price job and checks the series against the option it priced."""

import pytest
from eth_utils import function_abi_to_4byte_selector, to_checksum_address

from mpc_nodes.chain import contracts
from mpc_nodes.chain.eip712 import WAD, Domain, to_fixed
from mpc_nodes.chain.settlement import settlement_transaction
from mpc_nodes.config import ConfigError, load_yaml_model
from mpc_nodes.jobs.calldata import (SETTLEMENT_FUNCTIONS, SETTLEMENT_SELECTORS, CalldataError,
                                     decode_settlement)
from mpc_nodes.jobs.evm import parse_transaction
from mpc_nodes.jobs.marks import (EXPIRY_TOLERANCE_S, YEAR_S, MarkRefused, SeriesTerms,
                                  build_mark)
from mpc_nodes.jobs.policy import Policy, PolicyCheck, PolicyState
from protocols.domain import EXPIRY_MIN

SETTLEMENT = "0x" + "5e" * 20
VERIFIER = "0x" + "7e" * 20
JOB = "0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000


def test_the_decoded_functions_are_the_compiled_contracts():
    abi = contracts.load("OptionSettlement").abi
    compiled = {function_abi_to_4byte_selector(f): f["name"] for f in abi
                if f["type"] == "function" and f["stateMutability"] in ("nonpayable",
                                                                          "payable")}
    assert SETTLEMENT_SELECTORS == compiled
    payable = {f["name"] for f in abi if f.get("stateMutability") == "payable"}
    assert payable == {"open_position"}


def test_settlement_calldata_round_trips_and_only_canonically():
    tx = settlement_transaction(1, 0, SETTLEMENT, "open_position", {
        "series_id": b"\x01" * 32, "holder": VERIFIER, "quantity": 3})
    data = parse_transaction(tx).data
    call = decode_settlement(data)
    assert (call.function, call.args["quantity"]) == ("open_position", 3)
    with pytest.raises(CalldataError, match="not canonically encoded"):
        decode_settlement(data + b"\0")
    with pytest.raises(ValueError, match="has no function 'drain'"):
        settlement_transaction(1, 0, SETTLEMENT, "drain", {})


def policy(tmp_path, text: str) -> PolicyCheck:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return PolicyCheck(load_yaml_model(path, Policy), PolicyState(tmp_path / "state.sqlite"),
                       path)


BASE = """version: 2
chain_ids: [1]
eth: {recipients: [], max_fee_wei: 10000000000000000, max_per_tx_wei: 2000000000000000000,
      daily_cap_wei: 10000000000000000000}
"""


def test_a_v2_policy_without_the_new_sections_signs_no_typed_data(tmp_path):
    check = policy(tmp_path, BASE)
    domain = Domain.of(1, VERIFIER).as_eip712()
    assert not check.check_typed_data(domain, "Mark", "oracle").accept


def test_contract_rules_name_the_function_and_the_value(tmp_path):
    check = policy(tmp_path, BASE + f"""contracts:
  - {{chain_id: 1, address: "{SETTLEMENT}", functions: [settle, open_position]}}
""")

    def decide(function, args, value=0):
        tx = parse_transaction(settlement_transaction(1, 0, SETTLEMENT, function, args, value))
        return check.check(tx, "vault")

    position = {"series_id": b"\x01" * 32, "holder": VERIFIER, "quantity": 1}
    assert decide("open_position", position, value=10**18).accept
    assert decide("withdraw", {}).reason == (f"withdraw is not allowed on contract"
                                             f" {to_checksum_address(SETTLEMENT)}")
    assert decide("open_position", position, value=3 * 10**18).reason.startswith(
        "over the per-transaction limit")


@pytest.mark.parametrize("section, message", [
    (f'contracts: [{{chain_id: 5, address: "{SETTLEMENT}", functions: [settle]}}]',
     "is on chain 5, which chain_ids does not allow"),
    (f'contracts: [{{chain_id: 1, address: "{SETTLEMENT}", functions: [settle]}},'
     f' {{chain_id: 1, address: "{SETTLEMENT}", functions: [withdraw]}}]', "listed twice"),
    (f'contracts: [{{chain_id: 1, address: "{SETTLEMENT}", functions: [drain]}}]',
     "functions"),
    (f'typed_data: [{{name: x, version: "1", chain_id: 1, verifying_contract: "{VERIFIER}",'
     f' primary_types: []}}]', "primary_types"),
])
def test_bad_rules_are_refused_with_a_reason(tmp_path, section, message):
    with pytest.raises(ConfigError, match=message):
        policy(tmp_path, BASE + section + "\n")


def test_typed_data_rules_match_the_domain_exactly(tmp_path):
    check = policy(tmp_path, BASE + f"""typed_data:
  - {{name: "mpcnet mark", version: "1", chain_id: 1, verifying_contract: "{VERIFIER}",
      primary_types: [Mark], keys: [oracle]}}
""")
    domain = Domain.of(1, VERIFIER).as_eip712()
    assert check.check_typed_data(domain, "Mark", "oracle").accept
    for changed, primary, key in [({}, "Order", "oracle"), ({}, "Mark", "vault"),
                                  ({"chainId": 2}, "Mark", "oracle"),
                                  ({"version": "2"}, "Mark", "oracle")]:
        assert not check.check_typed_data(domain | changed, primary, key).accept


def job(expiry=EXPIRY_MIN, greeks=True):
    inputs = {"underlying": "ETH", "spot": 3000.0, "rate": 0.03, "dividend": 0.0,
              "is_call": [True, False], "strikes": [2800.0, 3300.0],
              "expiries": [expiry, 0.5], "quantities": None, "greeks": greeks,
              "method": "median", "reveal": "all", "recipient": None, "portfolio": False}
    values = {"price": [200.5, 310.25]} | ({g: [0.9, -0.8] for g in
                                             ("delta", "gamma", "vega", "theta")}
                                           if greeks else {})
    outputs = {"underlying": "ETH", "options": 2, "method": "median", "breached": [],
               "limit": 0.2, "values": values}
    return inputs, outputs


def series(**changes):
    return SeriesTerms(**{"underlying": "ETH", "strike": 2800 * WAD, "expiry": NOW,
                          "is_call": True, **changes})


def test_a_settlement_mark_is_the_options_values_at_its_spot():
    inputs, outputs = job()
    mark = build_mark(inputs, outputs, JOB, 0, series(), NOW + 10)
    assert (mark.spot, mark.price, mark.delta) == (3000 * WAD, to_fixed(200.5), to_fixed(0.9))
    assert mark.series_id == series().series_id()


def test_a_mark_before_expiry_matches_the_options_time_to_expiry():
    inputs, outputs = job()
    valued = NOW - round(0.5 * YEAR_S)
    build_mark(inputs, outputs, JOB, 1, series(strike=3300 * WAD, is_call=False), valued)
    with pytest.raises(MarkRefused, match="from the series' expiry"):
        build_mark(inputs, outputs, JOB, 1, series(strike=3300 * WAD, is_call=False),
                   valued - EXPIRY_TOLERANCE_S - 1)


@pytest.mark.parametrize("option, terms, valued, message", [
    (0, {"strike": 2900 * WAD}, NOW, "the series' strike"),
    (0, {"is_call": False}, NOW, "the series is a put, option 0 a call"),
    (0, {"underlying": "BTC"}, NOW, "the series is on BTC"),
    (1, {"strike": 3300 * WAD, "is_call": False}, NOW, "must be priced at the shortest"),
    (0, {}, NOW + EXPIRY_TOLERANCE_S + 1, "after the series' expiry"),
    (2, {}, NOW, "the job has no option 2"),
])
def test_a_mark_whose_series_is_not_the_option_is_refused(option, terms, valued, message):
    inputs, outputs = job()
    with pytest.raises(MarkRefused, match=message):
        build_mark(inputs, outputs, JOB, option, series(**terms), valued)


def test_a_breached_option_or_a_coordinator_only_job_has_no_mark():
    inputs, outputs = job()
    with pytest.raises(MarkRefused, match="breached the circuit breaker"):
        build_mark(inputs, outputs | {"breached": [0]}, JOB, 0, series(), NOW)
    with pytest.raises(MarkRefused, match="reveal-to-all"):
        build_mark(inputs | {"reveal": "coordinator", "recipient": "c"}, outputs, JOB, 0,
                   series(), NOW)

"""Issue 17: an EIP-712 mark signed by the network's oracle key is what the network computed.

The attacker is the curious coordinator: it holds the roster coordinator's real key, runs a
real price job among three of four parties, and then asks for marks with another price,
another series, other inputs, another valuation time, or of a job a node did not take part
in.  Every node that did not compute exactly that mark refuses at the vote, naming why; a
genuine mark still signs, and eth-account's own EIP-712 recovers the oracle's address from
the signature over the typed data.
"""

import copy
import time

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import to_checksum_address

from mpc_nodes.chain.eip712 import Domain
from mpc_nodes.jobs.marks import SeriesTerms, build_mark, typed_data_json
from mpc_nodes.jobs.options_csv import OptionBook
from mpc_nodes.jobs.pricing import price_params
from protocols.domain import EXPIRY_MIN
from tests.cluster_harness import write_policies

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

CHAIN_ID, VERIFIER = 31337, "0x" + "7E" * 20
PRICERS = ["party0", "party1", "party2"]
BOOK = OptionBook(is_call=[True, False], strikes=[2800.0, 3300.0],
                  expiries=[EXPIRY_MIN, EXPIRY_MIN], quantities=None)
POLICY = f"""version: 2
chain_ids: [{CHAIN_ID}]
eth: {{recipients: [], max_fee_wei: 1, max_per_tx_wei: 1, daily_cap_wei: 1}}
typed_data:
  - {{name: "mpcnet mark", version: "1", chain_id: {CHAIN_ID},
      verifying_contract: "{VERIFIER.lower()}", primary_types: [Mark]}}
"""


def mark_params(job_id: str, inputs: dict, outputs: dict, expiry: int) -> dict:
    """A sign-mark request for option 0, written here from the job's public record."""
    return {"key_id": "mark-oracle", "price_job": job_id, "option": 0,
            "domain": {"chain_id": CHAIN_ID, "verifying_contract": to_checksum_address(VERIFIER)},
            "series": {"underlying": "ETH", "strike": 2800 * 10**18, "expiry": expiry,
                       "is_call": True},
            "valuation_time": int(time.time()), "inputs": inputs, "outputs": outputs}


def changed(params: dict, path: str, value) -> dict:
    out = copy.deepcopy(params)
    *parents, last = path.split(".")
    target = out
    for name in parents:
        target = target[name]
    target[last] = value
    return out


async def test_nodes_sign_only_the_mark_they_rebuild(shared_cluster, curious_factory):
    cluster = write_policies(shared_cluster(parties=4), POLICY)
    async with curious_factory(cluster) as cc:
        key = await cc.c.run_job("keygen", {"key_id": "mark-oracle"})
        assert key.ok, key.error
        inputs = price_params(BOOK, "ETH", 3000.0, 0.03, greeks=True)
        priced = await cc.run("price", inputs, participants=PRICERS)  # party3 sits out
        assert priced.ok and set(priced.participants) == set(PRICERS), priced.error
        expiry = int(time.time()) - 60  # a settlement mark: valued just after expiry
        genuine = mark_params(priced.job_id, inputs, priced.output, expiry)
        prices = priced.output["values"]["price"]
        lies = {
            "another price": (changed(genuine, "outputs.values.price",
                                      [prices[0] + 1, prices[1]]),
                              "produced other outputs on this node"),
            "another spot": (changed(genuine, "inputs.spot", 3100.0),
                             "the inputs are not the parameters of job"),
            "another strike": (changed(genuine, "series.strike", 2700 * 10**18),
                               "the series' strike"),
            "a call as a put": (changed(genuine, "series.is_call", False),
                                "the series is a put, option 0 a call"),
            "another expiry": (changed(genuine, "series.expiry", expiry + 90 * 86400),
                               "expires"),
            "another option's series": (changed(genuine, "option", 1),
                                        "the series' strike"),
            "a valuation an hour ago": (changed(genuine, "valuation_time",
                                                int(time.time()) - 3600),
                                        "the valuation time is"),
            "another domain": (changed(genuine, "domain.chain_id", CHAIN_ID + 1),
                               "policy: EIP-712 Mark"),
        }
        for what, (params, reason) in lies.items():
            votes = await cc.votes("sign-mark", params)
            for name in PRICERS:
                assert not votes[name].accept and reason in votes[name].reason, (what, name)
        votes = await cc.votes("sign-mark", genuine)
        assert all(votes[name].accept for name in PRICERS)
        assert not votes["party3"].accept  # it did not take part in the price job
        assert "has no successful price job" in votes["party3"].reason

        signed = await cc.run("sign-mark", genuine, participants=PRICERS)
        assert signed.ok, signed.error
        mark = build_mark(inputs, priced.output, priced.job_id, 0,
                          SeriesTerms(**genuine["series"]), genuine["valuation_time"])
        doc = typed_data_json(Domain.of(CHAIN_ID, genuine["domain"]["verifying_contract"]),
                              mark)
        signer = Account.recover_message(encode_typed_data(full_message=doc),
                                         signature=bytes.fromhex(signed.output["signature"]))
        assert signer == key.output["address"]

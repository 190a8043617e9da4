"""Issue 17 end to end: a price job on a real local cluster, its marks threshold-signed by
the network's oracle key (EIP-712, one secp256k1 signature), posted to the settlement
contract on py-evm, and every settlement transaction signed by the network's vault key
through each party's policy.  Payoffs are recomputed here from the series' terms and the
job's spot; every balance is checked against them."""

import asyncio
import http.server
import json
import subprocess
import sys
import threading
import time

import pytest
from eth_account import Account

from eth_utils import to_checksum_address

from mpc_nodes.chain import contracts
from mpc_nodes.chain.eip712 import DOMAIN_NAME, DOMAIN_VERSION, WAD, to_fixed
from mpc_nodes.chain.evm_local import LocalChain, Reverted
from mpc_nodes.chain.settlement import settle_args
from mpc_nodes.client import Client, JobFailed
from mpc_nodes.jobs.options_csv import parse_options
from protocols.domain import EXPIRY_MIN
from tests.cluster_harness import write_policies

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

SPOT, RATE = 3000, 0.03
CONTRACT_SIZE = 10**15  # wei per 1.0 quote unit of intrinsic value per contract
CAP = 5 * 10**17  # wei per contract
QUANTITY = 2
MAX_MARK_AGE = 600
# (is_call, strike): a call and a put, each in and out of the money, and a fifth series
# the refusals use (it has no positions)
SERIES = [(True, 2800), (True, 3200), (False, 3300), (False, 2900), (True, 3100)]
OTHER = to_checksum_address("0x" + "a1" * 20)  # a contract the policy does not list


def policy(chain_id: int, verifier: str, settlement: str) -> str:
    return f"""version: 2
chain_ids: [{chain_id}]
eth:
  recipients: []
  max_fee_wei: 10000000000000000
  max_per_tx_wei: 2000000000000000000
  daily_cap_wei: 100000000000000000000
contracts:
  - {{chain_id: {chain_id}, address: "{settlement}",
      functions: [list_series, open_position, settle, withdraw]}}
typed_data:
  - {{name: "{DOMAIN_NAME}", version: "{DOMAIN_VERSION}", chain_id: {chain_id},
      verifying_contract: "{verifier}", primary_types: [Mark], keys: [oracle, other-oracle]}}
  - {{name: "{DOMAIN_NAME}", version: "{DOMAIN_VERSION}", chain_id: {chain_id + 1},
      verifying_contract: "{verifier}", primary_types: [Mark], keys: [oracle]}}
"""


def refusals(failed: JobFailed) -> str:
    """Every party's reason for refusing the job."""
    return "; ".join(v.reason for v in failed.outcome.votes if not v.accept)


def payoff(is_call: bool, strike: int, spot: int) -> int:
    """Wei per contract, from the terms: min(intrinsic × contract size, cap)."""
    intrinsic = max(spot - strike, 0) if is_call else max(strike - spot, 0)
    return min(intrinsic * CONTRACT_SIZE, CAP)


class World:
    """The cluster, the chain, the deployed contracts and the network's two keys."""

    def __init__(self, cluster):
        self.cluster, self.chain = cluster, LocalChain()
        self.deployer, self.holders = self.chain.accounts[0], self.chain.accounts[1:5]
        self.expiry = self.chain.next_block_time() + 20  # positions open before it

    async def setup(self):
        async with self.client() as net:
            await net.wait_for_parties()
            self.oracle = (await net.keygen(key_id="oracle")).address
            self.vault = (await net.keygen(key_id="vault")).address
        self.verifier = self.chain.deploy(contracts.load("OracleMarkVerifier"), self.oracle,
                                          sender=self.deployer)
        self.settlement = self.chain.deploy(contracts.load("OptionSettlement"),
                                            self.verifier.address, self.vault, MAX_MARK_AGE,
                                            sender=self.deployer)
        write_policies(self.cluster, policy(self.chain.chain_id, self.verifier.address,
                                            self.settlement.address))
        self.chain.transfer(self.deployer, self.vault, 20 * WAD)

    def client(self):
        return Client.connect(self.cluster.dir, self.cluster.broker_url)

    async def vault_call(self, net, function, args=None, **options):
        """A settlement call signed by the network's vault key, mined; its fee in wei."""
        done = await net.settle("vault", self.settlement.address, function, args,
                                rpc=self.chain, **options)
        return self.chain.receipt(done.submitted).fee


@pytest.fixture(scope="module")
def world(shared_cluster):
    w = World(shared_cluster())
    asyncio.run(w.setup())
    return w


def book():
    rows = "\n".join(f"{'call' if c else 'put'},{k},{EXPIRY_MIN}" for c, k in SERIES)
    return parse_options("type,strike,expiry\n" + rows + "\n")


def terms(world, i):
    is_call, strike = SERIES[i]
    return {"strike": strike * WAD, "expiry": world.expiry, "is_call": is_call}


async def test_lifecycle_and_the_contracts_refusals(world):
    chain, settlement = world.chain, world.settlement
    vault_fees = 0
    async with world.client() as net:
        for i, (is_call, strike) in enumerate(SERIES):
            vault_fees += await world.vault_call(net, "list_series", {
                "underlying": "ETH", "strike": strike * WAD, "expiry": world.expiry,
                "is_call": is_call, "contract_size": CONTRACT_SIZE, "cap": CAP})
        for holder, (is_call, strike) in zip(world.holders, SERIES):
            sid = settlement.call("series_id", "ETH", strike * WAD, world.expiry, is_call)
            vault_fees += await world.vault_call(
                net, "open_position", {"series_id": sid, "holder": holder,
                                       "quantity": QUANTITY}, value=QUANTITY * CAP)
        await asyncio.sleep(max(0.0, world.expiry - time.time()))  # marks after expiry
        priced = await net.price(book(), "ETH", SPOT, RATE, greeks=True,
                                 sign_eip712="oracle", chain_id=chain.chain_id,
                                 verifying_contract=world.verifier.address,
                                 series=[terms(world, i) for i in range(len(SERIES))])
        marks = priced.marks
        assert [m.signer for m in marks] == [world.oracle] * len(SERIES)
        for mark, option in zip(marks, priced.options):  # the mark is the job's result
            assert mark.typed_data["message"]["price"] == to_fixed(option.price)
            assert mark.typed_data["message"]["spot"] == SPOT * WAD
        # the chain's clock a little after the valuation: fresh, after expiry
        valued = marks[0].typed_data["message"]["valuation_time"]
        chain.set_next_block_time(max(valued + 5, chain.next_block_time()))
        before = {h: chain.balance(h) for h in world.holders}
        for mark in marks[:4]:
            vault_fees += await world.vault_call(net, "settle", mark=mark)

        # refused by the contract, with the network's own signatures
        fifth = marks[4]
        tampered = dict(fifth.typed_data, message=dict(fifth.typed_data["message"],
                                                       spot=fifth.typed_data["message"]["spot"] + 1))
        other_key = await net.keygen(key_id="other-oracle")
        by_other = await net.sign_mark("other-oracle", priced, 4, chain.chain_id,
                                       world.verifier.address, terms(world, 4))
        assert by_other.signer == other_key.address != world.oracle
        other_chain = await net.sign_mark("oracle", priced, 4, chain.chain_id + 1,
                                          world.verifier.address, terms(world, 4))
        refusals = [
            (settle_args(marks[0].typed_data, marks[0].digest, marks[0].signature),
             "settle: the mark was already used"),
            (settle_args(tampered, fifth.digest, fifth.signature),
             "mark: fields differ from the signed mark"),
            (settle_args(by_other.typed_data, by_other.digest, by_other.signature),
             "mark: not signed by the oracle key"),
            (settle_args(other_chain.typed_data, other_chain.digest, other_chain.signature),
             "mark: signed for another chain id"),
        ]
        for args, reason in refusals:
            with pytest.raises(Reverted, match=reason):
                settlement.transact("settle", *args.values(), sender=world.deployer)
        chain.set_next_block_time(valued + MAX_MARK_AGE + 1)
        with pytest.raises(Reverted, match="settle: the mark is stale"):
            settlement.transact("settle", *settle_args(fifth.typed_data, fifth.digest,
                                                       fifth.signature).values(),
                                sender=world.deployer)

        # every credit is the payoff computed here; withdrawals move exactly it
        spot = marks[0].typed_data["message"]["spot"] // WAD
        owed = {h: QUANTITY * payoff(c, k, spot) for h, (c, k) in zip(world.holders, SERIES)}
        assert sorted(v > 0 for v in owed.values()) == [False, False, True, True]
        vault_credit = sum(QUANTITY * CAP for _ in world.holders) - sum(owed.values())
        assert settlement.call("credit", world.vault) == vault_credit
        for holder in world.holders:
            assert settlement.call("credit", holder) == owed[holder]
            if owed[holder]:
                fee = settlement.transact("withdraw", sender=holder).fee
                assert chain.balance(holder) == before[holder] + owed[holder] - fee
        vault_before = chain.balance(world.vault)
        fee = await world.vault_call(net, "withdraw")
        assert chain.balance(world.vault) == vault_before + vault_credit - fee
        assert chain.balance(world.vault) == (20 * WAD - vault_fees - fee
                                              - len(world.holders) * QUANTITY * CAP
                                              + vault_credit)
        assert chain.balance(settlement.address) == 0


async def test_the_policy_never_signs_what_it_does_not_list(world):
    chain = world.chain
    async with world.client() as net:
        cases = [
            (dict(contract=OTHER, function="withdraw"), f"calls to {OTHER} are not allowed"),
            (dict(contract=world.settlement.address, function="withdraw", value=1),
             "a withdraw call must carry no ETH value"),
        ]
        transfer = {"type": 2, "chainId": chain.chain_id, "nonce": 0, "gas": 100_000,
                    "to": world.settlement.address, "maxFeePerGas": 10**9,
                    "maxPriorityFeePerGas": 10**9, "data": "0xa9059cbb" + "00" * 64}
        with pytest.raises(JobFailed) as failed:  # another function: an ERC-20 transfer
            await net.sign("vault", transfer)
        assert refusals(failed.value).count("policy: calldata refused: function selector"
                                            " 0xa9059cbb is not a settlement contract"
                                            " function") == 3
        for options, reason in cases:
            with pytest.raises(JobFailed) as failed:
                await net.settle("vault", rpc=chain, **options)
            assert failed.value.outcome.kind == "sign" and not failed.value.outcome.participants
            assert refusals(failed.value).count(f"policy: {reason}") == 3
        # a domain no typed_data rule lists: another verifying contract
        priced = await net.price(book(), "ETH", SPOT, RATE)
        with pytest.raises(JobFailed) as failed:
            await net.sign_mark("oracle", priced, 0, chain.chain_id, OTHER, terms(world, 0))
        assert not failed.value.outcome.participants  # refused at the vote: never started
        assert refusals(failed.value).count("policy: EIP-712 Mark in domain 'mpcnet mark'"
                                            f" version '1' on chain {chain.chain_id} at {OTHER}"
                                            " is not allowed for key oracle") == 3
        # the vault key may not sign marks at all (keys: oracle, other-oracle)
        with pytest.raises(JobFailed) as failed:
            await net.sign_mark("vault", priced, 0, chain.chain_id, world.verifier.address,
                                terms(world, 0))
        assert refusals(failed.value).count("is not allowed for key vault") == 3


async def test_a_node_refuses_a_mark_that_differs_from_its_record(world):
    from mpc_nodes.chain.eip712 import Domain
    from mpc_nodes.jobs.marks import SeriesTerms, mark_request
    async with world.client() as net:
        priced = await net.price(book(), "ETH", SPOT, RATE)
        params = mark_request("oracle", Domain.of(world.chain.chain_id, world.verifier.address),
                              SeriesTerms(underlying="ETH", **terms(world, 0)), 0,
                              priced.params, priced.outcome, int(time.time()))
        values = params["outputs"]["values"]
        lying = dict(params, outputs=dict(params["outputs"], values=dict(
            values, price=[values["price"][0] * 1.01, *values["price"][1:]])))
        outcome = await net.coordinator.run_job("sign-mark", lying)
        assert not outcome.ok and not outcome.participants
        assert [v.reason.split(": ", 2)[-1] for v in outcome.votes] == [
            f"job {priced.outcome.job_id[:8]} produced other outputs on this node"] * 3
        other_series = dict(params, series=dict(params["series"], strike=2900 * WAD))
        outcome = await net.coordinator.run_job("sign-mark", other_series)
        assert not outcome.ok and not outcome.participants
        assert all("the series' strike" in v.reason for v in outcome.votes)


class RpcServer:
    """A JSON-RPC endpoint over HTTP in front of the in-process chain (the three methods
    `mpcnet settle --rpc` uses)."""

    def __init__(self, chain: LocalChain):
        def handle(method, params):
            if method == "eth_chainId":
                return hex(chain.chain_id)
            if method == "eth_getTransactionCount":
                return hex(chain.transaction_count(params[0]))
            return chain.send_raw_transaction(bytes.fromhex(params[0][2:]))

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                try:
                    reply = {"result": handle(request["method"], request["params"])}
                except Reverted as exc:
                    reply = {"error": {"code": 3, "message": f"execution reverted: {exc}"}}
                body = json.dumps({"jsonrpc": "2.0", "id": request["id"], **reply}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def mpcnet(world, *args):
    run = subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *args, "--dir",
                          str(world.cluster.dir), "--broker", world.cluster.broker_url,
                          "--json"], capture_output=True, text=True, timeout=120)
    return run.returncode, json.loads(run.stdout) if run.stdout.strip() else run.stderr


async def test_settle_through_the_cli_signs_and_submits_over_json_rpc(world):
    rpc = RpcServer(world.chain)
    try:
        vault_nonce = world.chain.transaction_count(world.vault)
        common = ["settle", "--key", "vault", "--contract", world.settlement.address,
                  "--function", "withdraw"]
        code, shown = await asyncio.to_thread(mpcnet, world, *common, "--chain-id",
                                              str(world.chain.chain_id), "--nonce", "1000")
        assert code == 0 and shown["ok"] and shown["output"]["submitted"] is None
        assert Account.recover_transaction(shown["output"]["raw"]) == world.vault
        assert world.chain.transaction_count(world.vault) == vault_nonce  # only printed
        expiry = world.chain.next_block_time() + 3600
        listing = ["settle", "--key", "vault", "--contract", world.settlement.address,
                   "--function", "list_series", "--args", json.dumps({
                       "underlying": "BTC", "strike": 90_000 * WAD, "expiry": expiry,
                       "is_call": True, "contract_size": 1, "cap": 1})]
        code, sent = await asyncio.to_thread(mpcnet, world, *listing, "--rpc", rpc.url)
        assert code == 0 and sent["output"]["submitted"] == sent["output"]["hash"], sent
        assert world.chain.receipt(sent["output"]["submitted"])  # mined
        assert world.chain.transaction_count(world.vault) == vault_nonce + 1
        sid = world.settlement.call("series_id", "BTC", 90_000 * WAD, expiry, True)
        assert world.settlement.call("series", sid)[0] == "BTC"
        code, reverted = await asyncio.to_thread(mpcnet, world, *common, "--rpc", rpc.url)
        assert code == 2 and "execution reverted: withdraw: nothing is credited" in reverted
        code, refused = await asyncio.to_thread(mpcnet, world, *common[:-1], "drain")
        assert code == 2 and "'drain' is not one of" in refused
    finally:
        rpc.server.shutdown()

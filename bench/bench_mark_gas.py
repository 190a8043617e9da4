"""Gas of checking a mark on-chain: one threshold signature (OracleMarkVerifier, one
ecrecover against the network's oracle address) against t+1 separate signatures
(CommitteeMarkVerifier, as committee oracles do, t = 1, 2, 3); and of settling a series
with 1, 16 and 64 positions. docs/SETTLEMENT.md quotes the figures.

Figures are py-evm transaction receipts. Keys are fixed, so a run is reproducible to the
gas unit. A verification alone is a small transaction with a large calldata, so on Prague
(py-evm's latest fork) EIP-7623's calldata floor can set its price; the same transactions
on Cancun show the cost without the floor, and their execution gas (receipt less 21,000
and 4 or 16 per calldata byte) is what a verification adds inside a larger transaction.

    python bench/bench_mark_gas.py
"""

from __future__ import annotations

from eth.vm.forks import CancunVM
from eth_account import Account
from eth_utils import keccak, to_bytes

from mpc_nodes.chain import contracts
from mpc_nodes.chain.eip712 import (WAD, Domain, Mark, job_id_word, mark_digest, series_id,
                                    signature_abi, to_fixed)
from mpc_nodes.chain.evm_local import LocalChain, Receipt

CONTRACT_SIZE = 10**15
CAP = 10**18
EXPIRY = 2_000_000_000  # fixed, as the mark's time is calldata and its bytes cost gas


def key(i: int):
    return Account.from_key(keccak(f"bench_mark_gas key {i}".encode()))


def a_mark(series: bytes, valuation_time: int) -> Mark:
    return Mark.of(underlying="ETH", series_id=series, spot=to_fixed(2100.25),
                   price=to_fixed(101.5), has_greeks=True, delta=to_fixed(0.55),
                   gamma=to_fixed(0.0004), vega=to_fixed(310.2), theta=to_fixed(-45.75),
                   job_id=job_id_word("0123456789abcdef0123456789abcdef"),
                   valuation_time=valuation_time, inputs_hash=b"\x22" * 32)


def sign(digest: bytes, account) -> tuple:
    return signature_abi(bytes(Account.unsafe_sign_hash(digest, account.key).signature))


def costs(chain: LocalChain, receipt: Receipt) -> tuple[int, int, int]:
    """(receipt gas, calldata bytes, receipt gas less 21,000 and 4/16 per calldata byte)."""
    data = to_bytes(hexstr=chain.tester.get_transaction_by_hash(receipt.tx_hash)["data"])
    zeros = data.count(0)
    return (receipt.gas_used, len(data),
            receipt.gas_used - 21_000 - 4 * zeros - 16 * (len(data) - zeros))


def verify_costs(chain: LocalChain, t: int | None) -> tuple[int, int, int]:
    """One mark verified by the oracle verifier (t None) or a committee of 2t+1 members."""
    signers = [key(0)] if t is None else sorted((key(i) for i in range(2 * t + 1)),
                                                key=lambda a: int(a.address, 16))[:t + 1]
    if t is None:
        verifier = chain.deploy(contracts.load("OracleMarkVerifier"), signers[0].address,
                                sender=chain.accounts[0])
    else:
        members = [key(i).address for i in range(2 * t + 1)]
        verifier = chain.deploy(contracts.load("CommitteeMarkVerifier"), members, t,
                                sender=chain.accounts[0])
    domain = Domain.of(chain.chain_id, verifier.address)
    mark = a_mark(b"\x11" * 32, 1_800_000_000)
    digest = mark_digest(domain, mark)
    sigs = [sign(digest, a) for a in signers]
    receipt = verifier.transact("verify", domain.as_abi(), mark.as_abi(), digest,
                                sigs[0] if t is None else sigs, sender=chain.accounts[0])
    return costs(chain, receipt)


def settle_gas(positions: int) -> int:
    chain = LocalChain()
    deployer, vault = chain.accounts[:2]
    oracle = key(0)
    verifier = chain.deploy(contracts.load("OracleMarkVerifier"), oracle.address,
                            sender=deployer)
    settlement = chain.deploy(contracts.load("OptionSettlement"), verifier.address, vault,
                              600, sender=deployer)
    expiry = EXPIRY
    strike = 2000 * WAD
    settlement.transact("list_series", "ETH", strike, expiry, True, CONTRACT_SIZE, CAP,
                        sender=vault)
    sid = series_id("ETH", strike, expiry, True)
    for i in range(positions):  # distinct holders: each credit is a fresh storage slot
        holder = "0x" + (i + 1).to_bytes(20, "big").hex()
        settlement.transact("open_position", sid, holder, 1, sender=vault, value=CAP)
    chain.set_next_block_time(expiry + 10)
    domain = Domain.of(chain.chain_id, verifier.address)
    mark = a_mark(sid, expiry + 5)
    digest = mark_digest(domain, mark)
    return settlement.transact("settle", domain.as_abi(), mark.as_abi(), digest,
                               sign(digest, oracle), sender=deployer).gas_used


def main() -> None:
    prague, cancun = LocalChain(), LocalChain(CancunVM)
    print("verify one mark: transaction gas (receipt), calldata, and execution gas")
    print(f"{'scheme':<38}{'sigs':>5}{prague.fork:>11}{cancun.fork:>11}{'calldata B':>12}"
          f"{'execution':>11}")
    for t in (None, 1, 2, 3):
        name = "threshold key (OracleMarkVerifier)" if t is None else f"committee t={t}"
        gas, size, _ = verify_costs(prague, t)
        cancun_gas, cancun_size, execution = verify_costs(cancun, t)
        assert size == cancun_size
        print(f"{name:<38}{1 if t is None else t + 1:>5}{gas:>11}{cancun_gas:>11}{size:>12}"
              f"{execution:>11}")
    print(f"\nsettle one series on {prague.fork} (verify through an external call, credit"
          " every position)")
    for n in (1, 16, 64):
        print(f"{n:>3} positions: {settle_gas(n):>9} gas")


if __name__ == "__main__":
    main()

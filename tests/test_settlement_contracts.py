"""EIP-712 marks and the settlement contracts on py-evm (eth-tester).

The mark encoding is checked against eth-account's EIP-712 and the contract's own hash; an
eth-account key stands in for the network's threshold oracle key (the contract cannot tell
the difference: both make one secp256k1 signature of the digest). Payoffs are recomputed
here from the series' terms and the mark's spot, and every balance is checked against them.
"""

import dataclasses

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from mpc_nodes.chain import contracts
from mpc_nodes.chain.eip712 import (WAD, Domain, Mark, MarkError, job_id_word, mark_digest,
                                    series_id, signature_abi, to_fixed, typed_data)
from mpc_nodes.chain.evm_local import LocalChain, Reverted

MAX_MARK_AGE = 600
CONTRACT_SIZE = 10**15  # wei per 1.0 quote unit of intrinsic value per contract
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@pytest.fixture(scope="module", autouse=True)
def compiled():
    """Compile (or read from build/contracts) once per module."""
    return {name: contracts.load(name) for name in contracts.NAMES}


def eip191_hash(signable) -> bytes:
    """What eth-account signs for a SignableMessage (EIP-191: 0x19 || version || header || body)."""
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def a_mark(**changes) -> Mark:
    fields = dict(underlying="ETH", series_id=b"\x11" * 32, spot=to_fixed(2500.5),
                  price=to_fixed(123.456), has_greeks=True, delta=to_fixed(0.52),
                  gamma=to_fixed(0.0004), vega=to_fixed(310.2), theta=to_fixed(-45.75),
                  job_id=job_id_word("0123456789abcdef0123456789abcdef"),
                  valuation_time=1_800_000_000, inputs_hash=b"\x22" * 32)
    return Mark.of(**{**fields, **changes})


words = st.binary(min_size=32, max_size=32)
int256 = st.integers(-2**255, 2**255 - 1)


@st.composite
def marks(draw):
    greeks = draw(st.booleans())
    return Mark.of(
        underlying=draw(st.from_regex(r"\A[A-Z0-9][A-Z0-9._-]{0,31}\Z")),
        series_id=draw(words), spot=draw(st.integers(0, 2**256 - 1)), price=draw(int256),
        has_greeks=greeks, **{g: draw(int256) if greeks else 0
                              for g in ("delta", "gamma", "vega", "theta")},
        job_id=draw(words), valuation_time=draw(st.integers(0, 2**256 - 1)),
        inputs_hash=draw(words))


@given(mark=marks(), chain_id=st.integers(1, 2**64),
       contract=st.binary(min_size=20, max_size=20))
def test_digest_matches_eth_account(mark, chain_id, contract):
    domain = Domain.of(chain_id, to_checksum_address(contract))
    assert mark_digest(domain, mark) == eip191_hash(encode_typed_data(
        full_message=typed_data(domain, mark)))


@pytest.mark.parametrize("fields, message", [
    ({"underlying": "eth"}, "Mark field underlying"),
    ({"series_id": b"\x11" * 31}, "Mark field series_id"),
    ({"spot": -1}, "Mark field spot"),
    ({"price": 2**255}, "Mark field price"),
    ({"has_greeks": False}, "Greeks are set but has_greeks is false"),
    ({"valuation_time": 1.5}, "Mark field valuation_time"),
])
def test_bad_mark_fields_are_named(fields, message):
    with pytest.raises(MarkError, match=message):
        a_mark(**fields)


def test_scaling_and_ids():
    assert to_fixed(0.1) == 10**17 and to_fixed("2500.5") == 2500 * WAD + WAD // 2
    assert to_fixed(-45.75) == -45_750_000_000_000_000_000 and to_fixed(7) == 7 * WAD
    assert to_fixed("0.0000000000000000005") == 0 and to_fixed("0.0000000000000000015") == 2
    for bad in (float("nan"), "abc", True, [1, 2]):
        with pytest.raises(MarkError):
            to_fixed(bad)
    assert job_id_word("ab" * 16) == b"\xab" * 16 + b"\0" * 16
    with pytest.raises(MarkError, match="32 lower-case hex"):
        job_id_word("AB" * 16)
    with pytest.raises(MarkError, match="Domain field verifying_contract"):
        Domain.of(1, "0x1234")
    with pytest.raises(MarkError, match="65 bytes"):
        signature_abi(b"\0" * 64)


# --- on-chain ---------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Terms:
    underlying: str
    strike: int  # 1e18 scale
    is_call: bool
    cap: int     # wei per contract


@dataclasses.dataclass
class Market:
    chain: LocalChain
    oracle: object       # the eth-account key standing in for the network's oracle key
    verifier: object
    settlement: object
    vault: str
    holders: list
    expiry: int

    @property
    def domain(self) -> Domain:
        return Domain.of(self.chain.chain_id, self.verifier.address)

    def sid(self, terms: Terms) -> bytes:
        return series_id(terms.underlying, terms.strike, self.expiry, terms.is_call)

    def mark(self, terms: Terms, spot: int, valuation_time: int, **changes) -> Mark:
        return a_mark(underlying=terms.underlying, series_id=self.sid(terms), spot=spot,
                      valuation_time=valuation_time, **changes)

    def signed(self, mark: Mark, domain: Domain | None = None, key=None) -> tuple:
        """The settle() arguments of `mark` signed by `key` (default the oracle) for `domain`."""
        domain = domain or self.domain
        signed = Account.sign_typed_data((key or self.oracle).key,
                                         full_message=typed_data(domain, mark))
        assert bytes(signed.message_hash) == mark_digest(domain, mark)
        return domain.as_abi(), mark.as_abi(), mark_digest(domain, mark), \
            signature_abi(bytes(signed.signature))

    def settle(self, args, sender=None):
        return self.settlement.transact("settle", *args, sender=sender or self.holders[0])


CALL = Terms("ETH", 2000 * WAD, True, 2 * 10**18)
PUT = Terms("ETH", 2400 * WAD, False, 3 * 10**18)
CAPPED_CALL = Terms("ETH", 1000 * WAD, True, 5 * 10**17)
ALL_TERMS = (CALL, PUT, CAPPED_CALL)
QUANTITIES = {CALL: (3, 5), PUT: (2, 7), CAPPED_CALL: (4, 1)}  # per holder


@pytest.fixture
def market() -> Market:
    """Contracts deployed; three series listed, each with two holders' positions."""
    chain = LocalChain()
    deployer, vault, *holders = chain.accounts[:4]
    oracle = Account.create()
    verifier = chain.deploy(contracts.load("OracleMarkVerifier"), oracle.address,
                            sender=deployer)
    settlement = chain.deploy(contracts.load("OptionSettlement"), verifier.address, vault,
                              MAX_MARK_AGE, sender=deployer)
    m = Market(chain, oracle, verifier, settlement, vault, holders,
               expiry=chain.next_block_time() + 3600)
    for terms in ALL_TERMS:
        settlement.transact("list_series", terms.underlying, terms.strike, m.expiry,
                            terms.is_call, CONTRACT_SIZE, terms.cap, sender=vault)
        assert settlement.call("series_id", terms.underlying, terms.strike, m.expiry,
                               terms.is_call) == m.sid(terms)
        for holder, quantity in zip(holders, QUANTITIES[terms]):
            settlement.transact("open_position", m.sid(terms), holder, quantity,
                                sender=vault, value=quantity * terms.cap)
    return m


def test_contract_hashes_marks_as_python_does(market):
    mark = market.mark(CALL, 2100 * WAD, market.expiry)
    assert market.verifier.call("mark_digest", mark.as_abi()) == mark_digest(market.domain,
                                                                             mark)
    assert market.verifier.call("domain_separator") == market.domain.separator()
    assert market.verifier.call("verify", *market.signed(mark)) == mark_digest(market.domain,
                                                                               mark)


def expected_payoff(terms: Terms, spot: int) -> int:
    """Wei per contract: intrinsic value (spot and strike at 1e18) times the contract
    size, floored, at most the cap."""
    intrinsic = max(spot - terms.strike, 0) if terms.is_call else max(terms.strike - spot, 0)
    return min(intrinsic * CONTRACT_SIZE // WAD, terms.cap)


@pytest.mark.parametrize("spot, call_in_the_money, put_in_the_money", [
    (2100 * WAD + 123_456_789, True, True),  # between the strikes; payoffs are floored
    (1900 * WAD, False, True),
    (3000 * WAD, True, False),
    (2**250, True, False),  # intrinsic value times contract size overflows: the cap is paid
], ids=["between-the-strikes", "below-both", "above-both", "overflowing-spot"])
def test_settlement_pays_every_position_its_payoff(market, spot, call_in_the_money,
                                                   put_in_the_money):
    chain, settlement = market.chain, market.settlement
    payoffs = {terms: expected_payoff(terms, spot) for terms in ALL_TERMS}
    assert (payoffs[CALL] > 0, payoffs[PUT] > 0) == (call_in_the_money, put_in_the_money)
    assert payoffs[CAPPED_CALL] == CAPPED_CALL.cap  # the cap binds
    owed = dict.fromkeys([market.vault, *market.holders], 0)
    for terms in ALL_TERMS:
        for holder, quantity in zip(market.holders, QUANTITIES[terms]):
            owed[holder] += quantity * payoffs[terms]
            owed[market.vault] += quantity * (terms.cap - payoffs[terms])
    collateral = sum(q * t.cap for t in ALL_TERMS for q in QUANTITIES[t])
    assert chain.balance(settlement.address) == collateral == sum(owed.values())

    chain.set_next_block_time(market.expiry + 30)
    keeper = chain.accounts[5]  # anyone may settle with a signed mark
    for terms in ALL_TERMS:
        market.settle(market.signed(market.mark(terms, spot, market.expiry + 10)),
                      sender=keeper)
        assert settlement.call("series", market.sid(terms))[6:] == (True, spot)
    for account, amount in owed.items():
        assert settlement.call("credit", account) == amount
        if amount == 0:
            with pytest.raises(Reverted, match="nothing is credited"):
                settlement.transact("withdraw", sender=account)
            continue
        before = chain.balance(account)
        receipt = settlement.transact("withdraw", sender=account)
        assert chain.balance(account) == before + amount - receipt.fee
    assert chain.balance(settlement.address) == 0


def test_refusals_name_their_reason_and_change_nothing(market):
    chain = market.chain
    other_verifier = chain.deploy(contracts.load("OracleMarkVerifier"),
                                  market.oracle.address, sender=chain.accounts[0])
    other_domain = Domain.of(chain.chain_id, other_verifier.address)
    now = market.expiry + 100
    chain.set_next_block_time(now)  # refused transactions mine no block: the clock stays
    good = market.mark(PUT, 2300 * WAD, now - 50)
    domain, mark_abi, digest, sig = market.signed(good)
    v, r, s = sig
    high_s = (55 - v, r, (SECP256K1_ORDER - int.from_bytes(s, "big")).to_bytes(32, "big"))
    unlisted = Terms("ETH", 1234 * WAD, False, 10**18)
    cases = {
        "mark: signed for another chain id":
            market.signed(good, Domain.of(chain.chain_id + 1, market.verifier.address)),
        "mark: signed for another verifying contract": market.signed(good, other_domain),
        "mark: not signed by the oracle key": market.signed(good, key=Account.create()),
        "mark: signature s is in the upper half": (domain, mark_abi, digest, high_s),
        "mark: fields differ from the signed mark":
            (domain, a_mark(**{**good.model_dump(), "spot": 2200 * WAD}).as_abi(), digest,
             sig),
        "settle: the series is not listed":
            market.signed(market.mark(unlisted, 2300 * WAD, now - 50)),
        "settle: the mark is for another underlying":
            market.signed(a_mark(**{**good.model_dump(), "underlying": "BTC"})),
        "settle: the mark is from the future":
            market.signed(market.mark(PUT, 2300 * WAD, now + 1)),
        "settle: the mark is stale":
            market.signed(market.mark(PUT, 2300 * WAD, now - MAX_MARK_AGE - 1)),
        "settle: the mark is from before expiry":
            market.signed(market.mark(PUT, 2300 * WAD, market.expiry - 1)),
    }
    for reason, args in cases.items():
        with pytest.raises(Reverted) as refused:
            market.settle(args)
        assert refused.value.reason == reason
    # the same signature verifies where it was meant to: the refusal was the domain's
    assert other_verifier.call("verify", *market.signed(good, other_domain)) == \
        mark_digest(other_domain, good)

    assert market.settlement.call("series", market.sid(PUT))[6] is False
    market.settle((domain, mark_abi, digest, sig))
    with pytest.raises(Reverted, match="^settle: the mark was already used$"):
        market.settle((domain, mark_abi, digest, sig))
    with pytest.raises(Reverted, match="^settle: the series is already settled$"):
        market.settle(market.signed(market.mark(PUT, 2350 * WAD, now - 40)))
    assert market.settlement.call("series", market.sid(PUT))[7] == 2300 * WAD


def test_only_the_vault_writes_and_collateral_must_cover_the_cap(market):
    settlement, sid = market.settlement, market.sid(CALL)
    stranger = market.holders[0]
    with pytest.raises(Reverted, match="only the vault lists series"):
        settlement.transact("list_series", "BTC", WAD, market.expiry, True, 1, 1,
                            sender=stranger)
    with pytest.raises(Reverted, match="only the vault writes positions"):
        settlement.transact("open_position", sid, stranger, 1, sender=stranger,
                            value=CALL.cap)
    with pytest.raises(Reverted, match="collateral is not quantity \\* cap"):
        settlement.transact("open_position", sid, stranger, 2, sender=market.vault,
                            value=CALL.cap)
    with pytest.raises(Reverted, match="already listed"):
        settlement.transact("list_series", CALL.underlying, CALL.strike, market.expiry,
                            CALL.is_call, CONTRACT_SIZE, CALL.cap, sender=market.vault)
    market.chain.set_next_block_time(market.expiry)
    with pytest.raises(Reverted, match="the series has expired"):
        settlement.transact("open_position", sid, stranger, 1, sender=market.vault,
                            value=CALL.cap)


@pytest.mark.parametrize("t", [1, 2])
def test_committee_verifier_needs_t_plus_1_distinct_members(t):
    chain = LocalChain()
    members = sorted((Account.create() for _ in range(2 * t + 1)),
                     key=lambda a: int(a.address, 16))
    committee = chain.deploy(contracts.load("CommitteeMarkVerifier"),
                             [a.address for a in members], t, sender=chain.accounts[0])
    domain = Domain.of(chain.chain_id, committee.address)
    mark = a_mark()
    digest = mark_digest(domain, mark)

    def sigs(accounts):
        return [signature_abi(bytes(Account.unsafe_sign_hash(digest, a.key).signature))
                for a in accounts]

    args = (domain.as_abi(), mark.as_abi(), digest)
    assert committee.call("verify", *args, sigs(members[-(t + 1):])) == digest
    for signers, reason in [
            (members[:t], "not exactly t+1 signatures"),
            ([members[0]] * (t + 1), "signers not in ascending order"),
            (members[:t + 1][::-1], "signers not in ascending order"),
            (members[:t] + [Account.create()], "a signature is not a member's")]:
        with pytest.raises(Reverted) as refused:
            committee.call("verify", *args, sigs(signers))
        assert refused.value.reason == f"committee: {reason}"

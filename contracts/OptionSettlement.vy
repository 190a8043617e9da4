# pragma version ~=0.4.3
"""
@title Cash settlement of European options on the network's signed marks
@notice The vault (the network's threshold ECDSA vault key) lists series and writes
        positions, posting each position's largest payoff in ETH. After expiry anyone may
        post a fresh oracle mark of a series; the contract checks it with the oracle mark
        verifier, settles every position of the series at the mark's spot, credits each
        holder its payoff and the vault the collateral left, and each withdraws its credit.
        Prices are fixed-point with 18 decimals (1e18 is 1.0); docs/SETTLEMENT.md.
"""

import mark_typed_data as typed
import OracleMarkVerifier

WAD: constant(uint256) = 10**18
MAX_POSITIONS: constant(uint256) = 64  # per series: settlement credits them in one loop

struct Series:
    underlying: String[32]
    strike: uint256          # quote units, 1e18 scale
    expiry: uint256          # Unix seconds
    is_call: bool
    contract_size: uint256   # wei paid per 1.0 quote unit of intrinsic value per contract
    cap: uint256             # largest payoff per contract (wei): the collateral posted
    settled: bool
    settlement_spot: uint256

struct Position:
    holder: address
    quantity: uint256        # contracts

event SeriesListed:
    series_id: indexed(bytes32)
    underlying: String[32]
    strike: uint256
    expiry: uint256
    is_call: bool
    contract_size: uint256
    cap: uint256

event PositionOpened:
    series_id: indexed(bytes32)
    holder: indexed(address)
    quantity: uint256

event Settled:
    series_id: indexed(bytes32)
    mark_digest: bytes32
    job_id: bytes32
    spot: uint256
    payoff_per_contract: uint256

event Withdrawn:
    account: indexed(address)
    amount: uint256

VERIFIER: public(immutable(address))
VAULT: public(immutable(address))
MAX_MARK_AGE: public(immutable(uint256))

series: public(HashMap[bytes32, Series])
positions: public(HashMap[bytes32, DynArray[Position, MAX_POSITIONS]])
used_marks: public(HashMap[bytes32, bool])
credit: public(HashMap[address, uint256])


@deploy
def __init__(verifier: address, vault: address, max_mark_age: uint256):
    assert verifier.is_contract, "settlement: the verifier is not a contract"
    assert vault != empty(address), "settlement: the vault address is zero"
    assert max_mark_age > 0, "settlement: the mark age limit is zero"
    VERIFIER = verifier
    VAULT = vault
    MAX_MARK_AGE = max_mark_age


@external
@pure
def series_id(underlying: String[32], strike: uint256, expiry: uint256, is_call: bool) -> bytes32:
    """A series' id from its terms, so the network can name it in a mark without
    reading the chain."""
    return self._series_id(underlying, strike, expiry, is_call)


@internal
@pure
def _series_id(underlying: String[32], strike: uint256, expiry: uint256, is_call: bool) -> bytes32:
    return keccak256(abi_encode(keccak256(underlying), strike, expiry, is_call))


@external
def list_series(
    underlying: String[32],
    strike: uint256,
    expiry: uint256,
    is_call: bool,
    contract_size: uint256,
    cap: uint256,
) -> bytes32:
    assert msg.sender == VAULT, "settlement: only the vault lists series"
    assert len(underlying) > 0, "settlement: the underlying is empty"
    assert strike > 0, "settlement: the strike is zero"
    assert expiry > block.timestamp, "settlement: the expiry is not in the future"
    assert contract_size > 0 and cap > 0, "settlement: contract size or cap is zero"
    sid: bytes32 = self._series_id(underlying, strike, expiry, is_call)
    assert self.series[sid].expiry == 0, "settlement: the series is already listed"
    self.series[sid] = Series(
        underlying=underlying, strike=strike, expiry=expiry, is_call=is_call,
        contract_size=contract_size, cap=cap, settled=False, settlement_spot=0,
    )
    log SeriesListed(
        series_id=sid, underlying=underlying, strike=strike, expiry=expiry,
        is_call=is_call, contract_size=contract_size, cap=cap,
    )
    return sid


@external
@payable
def open_position(series_id: bytes32, holder: address, quantity: uint256):
    """The vault writes `quantity` contracts to `holder`, posting their largest payoff."""
    assert msg.sender == VAULT, "settlement: only the vault writes positions"
    s: Series = self.series[series_id]
    assert s.expiry != 0, "settlement: the series is not listed"
    assert block.timestamp < s.expiry, "settlement: the series has expired"
    assert holder != empty(address), "settlement: the holder address is zero"
    assert quantity > 0, "settlement: the quantity is zero"
    assert msg.value == quantity * s.cap, "settlement: the collateral is not quantity * cap"
    self.positions[series_id].append(Position(holder=holder, quantity=quantity))
    log PositionOpened(series_id=series_id, holder=holder, quantity=quantity)


@internal
@pure
def _payoff_per_contract(s: Series, spot: uint256) -> uint256:
    intrinsic: uint256 = 0
    if s.is_call and spot > s.strike:
        intrinsic = spot - s.strike
    elif not s.is_call and s.strike > spot:
        intrinsic = s.strike - spot
    if intrinsic > max_value(uint256) // s.contract_size:
        return s.cap  # the product would overflow, and it is far above any cap ETH can fund
    return min(intrinsic * s.contract_size // WAD, s.cap)


@external
def settle(
    domain: typed.Domain, mark: typed.Mark, digest: bytes32, sig: typed.Signature
):
    """Settle the mark's series at its spot: credit each holder its payoff and the vault
    the rest of the collateral. Anyone may call it with a mark the oracle signed."""
    verified: bytes32 = staticcall OracleMarkVerifier.__interface__(VERIFIER).verify(
        domain, mark, digest, sig
    )
    s: Series = self.series[mark.series_id]
    assert s.expiry != 0, "settle: the series is not listed"
    assert keccak256(mark.underlying) == keccak256(s.underlying), "settle: the mark is for another underlying"
    assert mark.valuation_time <= block.timestamp, "settle: the mark is from the future"
    assert block.timestamp - mark.valuation_time <= MAX_MARK_AGE, "settle: the mark is stale"
    assert mark.valuation_time >= s.expiry, "settle: the mark is from before expiry"
    assert not self.used_marks[verified], "settle: the mark was already used"
    assert not s.settled, "settle: the series is already settled"

    self.used_marks[verified] = True
    payoff: uint256 = self._payoff_per_contract(s, mark.spot)
    self.series[mark.series_id].settled = True
    self.series[mark.series_id].settlement_spot = mark.spot
    returned: uint256 = 0
    for p: Position in self.positions[mark.series_id]:
        self.credit[p.holder] += p.quantity * payoff
        returned += p.quantity * (s.cap - payoff)
    self.credit[VAULT] += returned
    log Settled(
        series_id=mark.series_id, mark_digest=verified, job_id=mark.job_id, spot=mark.spot,
        payoff_per_contract=payoff,
    )


@external
@nonreentrant
def withdraw():
    """Pay the caller everything credited to it."""
    amount: uint256 = self.credit[msg.sender]
    assert amount > 0, "withdraw: nothing is credited to the caller"
    self.credit[msg.sender] = 0
    raw_call(msg.sender, b"", value=amount)
    log Withdrawn(account=msg.sender, amount=amount)

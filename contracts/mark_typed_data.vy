# pragma version ~=0.4.3
"""
@title EIP-712 typed data of an mpcnet mark
@notice A mark is one option series' price report as the network signs it. This
        module hashes it the EIP-712 way and checks a submitted domain and
        signature's shape; the contracts that import it decide whose signature counts.
        docs/SETTLEMENT.md has the schema and the scales (fixed-point, 1e18).
"""

struct Domain:
    name: String[32]
    version: String[8]
    chainId: uint256
    verifyingContract: address

struct Mark:
    underlying: String[32]
    series_id: bytes32
    spot: uint256
    price: int256
    has_greeks: bool
    delta: int256
    gamma: int256
    vega: int256
    theta: int256
    job_id: bytes32
    valuation_time: uint256
    inputs_hash: bytes32

struct Signature:
    v: uint8
    r: bytes32
    s: bytes32

DOMAIN_NAME: constant(String[32]) = "mpcnet mark"
DOMAIN_VERSION: constant(String[8]) = "1"
DOMAIN_TYPEHASH: constant(bytes32) = keccak256(
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
MARK_TYPEHASH: constant(bytes32) = keccak256(
    "Mark(string underlying,bytes32 series_id,uint256 spot,int256 price,bool has_greeks,"
    "int256 delta,int256 gamma,int256 vega,int256 theta,bytes32 job_id,"
    "uint256 valuation_time,bytes32 inputs_hash)"
)
# secp256k1's group order halved: a signature with a larger s has a twin (n - s), so only
# the lower one is accepted (EIP-2)
HALF_ORDER: constant(uint256) = (  # 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0
    57896044618658097711785492504343953926418782139537452191302581570759080747168
)


@internal
@view
def check_domain(domain: Domain):
    """Refuse a mark signed for another chain, contract or domain, naming which."""
    assert domain.chainId == chain.id, "mark: signed for another chain id"
    assert domain.verifyingContract == self, "mark: signed for another verifying contract"
    assert (
        keccak256(domain.name) == keccak256(DOMAIN_NAME)
        and keccak256(domain.version) == keccak256(DOMAIN_VERSION)
    ), "mark: signed for another domain name or version"


@internal
@view
def domain_separator() -> bytes32:
    return keccak256(abi_encode(
        DOMAIN_TYPEHASH, keccak256(DOMAIN_NAME), keccak256(DOMAIN_VERSION), chain.id, self
    ))


@internal
@pure
def struct_hash(mark: Mark) -> bytes32:
    return keccak256(abi_encode(
        MARK_TYPEHASH, keccak256(mark.underlying), mark.series_id, mark.spot, mark.price,
        mark.has_greeks, mark.delta, mark.gamma, mark.vega, mark.theta, mark.job_id,
        mark.valuation_time, mark.inputs_hash,
    ))


@internal
@view
def digest(mark: Mark) -> bytes32:
    """The EIP-712 hash of `mark` in this contract's domain: what the oracle signs."""
    return keccak256(concat(x"1901", self.domain_separator(), self.struct_hash(mark)))


@internal
@pure
def recover(digest: bytes32, sig: Signature) -> address:
    """The signer of `digest`; a malformed signature is refused with its reason."""
    assert sig.v == 27 or sig.v == 28, "mark: signature v is not 27 or 28"
    assert convert(sig.s, uint256) <= HALF_ORDER, "mark: signature s is in the upper half"
    signer: address = ecrecover(digest, sig.v, sig.r, sig.s)
    assert signer != empty(address), "mark: signature recovers no address"
    return signer


@internal
@view
def check_fields(mark: Mark, digest: bytes32):
    """Refuse a mark whose fields are not the ones signed as `digest` in this domain."""
    assert self.digest(mark) == digest, "mark: fields differ from the signed mark"

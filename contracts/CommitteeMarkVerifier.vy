# pragma version ~=0.4.3
"""
@title Committee mark verifier: t+1 signatures from separate oracle keys
@notice What committee oracles do today, here only to compare gas with
        OracleMarkVerifier (bench/bench_mark_gas.py): a mark counts once t+1 distinct
        committee members signed its digest. Signatures come ordered by signer address,
        so distinctness costs one comparison each.
"""

import mark_typed_data as typed

MAX_MEMBERS: constant(uint256) = 16

is_member: public(HashMap[address, bool])
THRESHOLD: public(immutable(uint256))


@deploy
def __init__(members: DynArray[address, MAX_MEMBERS], threshold: uint256):
    assert threshold < len(members), "committee: t+1 signatures need more than t members"
    for member: address in members:
        assert member != empty(address), "committee: a member address is zero"
        assert not self.is_member[member], "committee: a member is listed twice"
        self.is_member[member] = True
    THRESHOLD = threshold


@external
@view
def verify(
    domain: typed.Domain,
    mark: typed.Mark,
    digest: bytes32,
    sigs: DynArray[typed.Signature, MAX_MEMBERS],
) -> bytes32:
    """Accept `mark` only if t+1 distinct members signed exactly it, for this chain and
    contract; return its digest."""
    typed.check_domain(domain)
    assert len(sigs) == THRESHOLD + 1, "committee: not exactly t+1 signatures"
    previous: uint256 = 0
    for sig: typed.Signature in sigs:
        signer: address = typed.recover(digest, sig)
        assert self.is_member[signer], "committee: a signature is not a member's"
        assert convert(signer, uint256) > previous, "committee: signers not in ascending order"
        previous = convert(signer, uint256)
    typed.check_fields(mark, digest)
    return digest

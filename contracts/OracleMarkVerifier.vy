# pragma version ~=0.4.3
"""
@title Oracle mark verifier: one signature from the network's oracle key
@notice The network signs a mark with one threshold ECDSA key; its address is all this
        contract needs, and one `ecrecover` checks a mark. `verify` reverts with a reason
        or returns nothing: there is no boolean to forget to check.
"""

import mark_typed_data as typed

ORACLE: public(immutable(address))


@deploy
def __init__(oracle: address):
    assert oracle != empty(address), "verifier: the oracle address is zero"
    ORACLE = oracle


@external
@view
def verify(
    domain: typed.Domain, mark: typed.Mark, digest: bytes32, sig: typed.Signature
) -> bytes32:
    """Accept `mark` only if the oracle signed exactly it, for this chain and contract;
    return its digest."""
    typed.check_domain(domain)
    assert typed.recover(digest, sig) == ORACLE, "mark: not signed by the oracle key"
    typed.check_fields(mark, digest)
    return digest


@external
@view
def mark_digest(mark: typed.Mark) -> bytes32:
    """The EIP-712 hash the oracle signs for `mark` here (for clients and tests)."""
    return typed.digest(mark)


@external
@view
def domain_separator() -> bytes32:
    return typed.domain_separator()

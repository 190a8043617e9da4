"""FROST(Ed25519, SHA-512): two-round threshold Schnorr signing exactly as RFC 9591.

Pure functions over byte strings; no state, no I/O.  Scalars are 32-byte little-endian
values < L, elements are 32-byte compressed Edwards points, identifiers are the integers
1..n used as Shamir evaluation points (encoded as 32-byte little-endian scalars).  All
group and scalar arithmetic is libsodium's (via ``nacl.bindings``), except the Lagrange
coefficients of the public identifiers (``protocols.shamir``); this module only
sequences the RFC's operations and validates every input on decode (RFC 9591 Section 6.1):
elements must be canonical, on the curve, not the identity and in the prime-order
subgroup; scalars must be canonical (< L).  The aggregate signature is a standard RFC 8032
Ed25519 signature ``R || z`` over the group public key.

Flow (RFC 9591 Section 5): each signer ``commit``s and keeps its ``SigningNonces`` secret;
the coordinator collects the ``SigningCommitment``s and the message; each signer ``sign``s;
the coordinator ``aggregate``s (and uses ``verify_share`` to name a cheater).

Nonces MUST be used for at most one signature (RFC 9591 Section 7.3); these functions
cannot enforce that, the caller must discard ``SigningNonces`` after ``sign``.

Edge cases: libsodium's ``*_noclamp`` scalar multiplications refuse a zero scalar (the
result would be the identity), so a zero scalar is handled here explicitly as the
identity.  A zero nonce, a zero binding factor or an identity group commitment each
occur with probability about 2**-252: a zero nonce or identity commitment raises
``FrostError`` (the RFC cannot serialize the identity); a zero binding factor is simply
computed with (its term is the identity).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

from nacl import bindings as _na
from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import VerifyKey

from protocols.shamir import lagrange_coefficients

__all__ = [
    "CONTEXT_STRING", "L", "FrostError", "InvalidShareError", "SigningNonces",
    "SigningCommitment", "decode_scalar", "decode_element", "encode_identifier",
    "H1", "H2", "H3", "H4", "H5", "nonce_generate", "derive_interpolating_value",
    "encode_group_commitment_list", "compute_binding_factor_inputs",
    "compute_binding_factors", "compute_group_commitment", "compute_challenge", "commit",
    "sign", "verify_share", "aggregate", "verify", "verification_share",
    "group_public_key",
]

CONTEXT_STRING = b"FROST-ED25519-SHA512-v1"
L = 2**252 + 27742317777372353535851937790883648493
SCALAR_SIZE = ELEMENT_SIZE = 32
SIGNATURE_SIZE = 64
_IDENTITY = b"\x01" + bytes(31)
_ZERO = bytes(32)

Rng = Callable[[int], bytes]


class FrostError(ValueError):
    """Malformed or inconsistent FROST input; the message names the problem."""


class InvalidShareError(FrostError):
    """One or more signature shares are invalid; ``identifiers`` names the signers."""

    def __init__(self, identifiers: Iterable[int], detail: str = "invalid signature share"):
        self.identifiers = sorted(identifiers)
        super().__init__(f"{detail} from identifier(s) {self.identifiers}")


# --- encoding and validation (RFC 9591 Section 6.1) ------------------------------------

def _as_bytes(data, what: str, size: int) -> bytes:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FrostError(f"{what} must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) != size:
        raise FrostError(f"{what} must be {size} bytes, got {len(data)}")
    return data


def decode_scalar(data, what: str = "scalar") -> bytes:
    """DeserializeScalar: 32 bytes, little-endian, canonical (< L)."""
    s = _as_bytes(data, what, SCALAR_SIZE)
    if not hmac.compare_digest(_na.crypto_core_ed25519_scalar_reduce(s + _ZERO), s):
        raise FrostError(f"{what} is not a canonical scalar (>= L)")
    return s


def decode_element(data, what: str = "element") -> bytes:
    """DeserializeElement: canonical, on curve, not identity, in the prime-order subgroup."""
    p = _as_bytes(data, what, ELEMENT_SIZE)
    if not _na.crypto_core_ed25519_is_valid_point(p):
        raise FrostError(f"{what} is not a valid prime-order-subgroup point "
                         "(non-canonical, off-curve, small-order or identity)")
    return p


def _check_identifier(identifier) -> int:
    if isinstance(identifier, bool) or not isinstance(identifier, int):
        raise FrostError(f"identifier must be an int, got {type(identifier).__name__}")
    if not 0 < identifier < L:
        raise FrostError(f"identifier {identifier} out of range (must be 1 <= id < L)")
    return identifier


def encode_identifier(identifier: int) -> bytes:
    """SerializeScalar(identifier): a NonZeroScalar, 32-byte little-endian."""
    return _check_identifier(identifier).to_bytes(SCALAR_SIZE, "little")


def _check_message(message) -> bytes:
    if not isinstance(message, (bytes, bytearray, memoryview)):
        raise FrostError(f"message must be bytes, got {type(message).__name__}")
    return bytes(message)


# --- libsodium arithmetic wrappers ------------------------------------------------------

def _sadd(a: bytes, b: bytes) -> bytes:
    return _na.crypto_core_ed25519_scalar_add(a, b)


def _smul(a: bytes, b: bytes) -> bytes:
    return _na.crypto_core_ed25519_scalar_mul(a, b)


def _is_zero(s: bytes) -> bool:
    return hmac.compare_digest(s, _ZERO)


def _base(s: bytes) -> bytes:
    """ScalarBaseMult(s); the identity for s == 0 (libsodium refuses that case)."""
    return _IDENTITY if _is_zero(s) else _na.crypto_scalarmult_ed25519_base_noclamp(s)


def _mul(p: bytes, s: bytes) -> bytes:
    """ScalarMult(p, s) for a validated point p; the identity for s == 0."""
    if _is_zero(s):
        return _IDENTITY
    try:
        return _na.crypto_scalarmult_ed25519_noclamp(s, p)
    except CryptoError as exc:  # only reachable for an unvalidated point
        raise FrostError("scalar multiplication rejected the point") from exc


def _add(p: bytes, q: bytes) -> bytes:
    return _na.crypto_core_ed25519_add(p, q)


def _reduce64(digest: bytes) -> bytes:
    return _na.crypto_core_ed25519_scalar_reduce(digest)


# --- hash functions (RFC 9591 Section 6.1) ----------------------------------------------

def _sha512(*parts: bytes) -> bytes:
    h = hashlib.sha512()
    for part in parts:
        h.update(part)
    return h.digest()


def H1(m: bytes) -> bytes:
    """Binding factor hash: SHA-512(contextString || "rho" || m) mod L."""
    return _reduce64(_sha512(CONTEXT_STRING, b"rho", m))


def H2(m: bytes) -> bytes:
    """Challenge hash, undecorated for RFC 8032 compatibility: SHA-512(m) mod L."""
    return _reduce64(_sha512(m))


def H3(m: bytes) -> bytes:
    """Nonce hash: SHA-512(contextString || "nonce" || m) mod L."""
    return _reduce64(_sha512(CONTEXT_STRING, b"nonce", m))


def H4(m: bytes) -> bytes:
    """Message hash: SHA-512(contextString || "msg" || m), 64 bytes."""
    return _sha512(CONTEXT_STRING, b"msg", m)


def H5(m: bytes) -> bytes:
    """Commitment-list hash: SHA-512(contextString || "com" || m), 64 bytes."""
    return _sha512(CONTEXT_STRING, b"com", m)


# --- data types -------------------------------------------------------------------------

@dataclass(frozen=True)
class SigningNonces:
    """A signer's secret round-one nonces (RFC 9591 Section 5.1). Use once, then discard."""

    hiding: bytes = field(repr=False)
    binding: bytes = field(repr=False)

    def __post_init__(self):
        object.__setattr__(self, "hiding", decode_scalar(self.hiding, "hiding nonce"))
        object.__setattr__(self, "binding", decode_scalar(self.binding, "binding nonce"))


@dataclass(frozen=True)
class SigningCommitment:
    """A signer's public round-one output (identifier, hiding, binding); validated on creation."""

    identifier: int
    hiding: bytes
    binding: bytes

    def __post_init__(self):
        _check_identifier(self.identifier)
        i = self.identifier
        object.__setattr__(self, "hiding",
                           decode_element(self.hiding, f"hiding commitment of identifier {i}"))
        object.__setattr__(self, "binding",
                           decode_element(self.binding, f"binding commitment of identifier {i}"))


def _commitment_list(commitments, min_signers: int | None = None) -> tuple[SigningCommitment, ...]:
    """The RFC's commitment_list: sorted by identifier, no duplicates, enough signers."""
    items = list(commitments)
    for c in items:
        if not isinstance(c, SigningCommitment):
            raise FrostError(f"commitments must be SigningCommitment, got {type(c).__name__}")
    if not items:
        raise FrostError("too few signers: the commitment list is empty")
    items.sort(key=lambda c: c.identifier)
    for a, b in zip(items, items[1:]):
        if a.identifier == b.identifier:
            raise FrostError(f"duplicate identifier {a.identifier} in commitment list")
    if min_signers is not None and len(items) < min_signers:
        raise FrostError(f"too few signers: {len(items)} commitments, need {min_signers}")
    return tuple(items)


def _find(commitment_list: Sequence[SigningCommitment], identifier: int) -> SigningCommitment:
    for c in commitment_list:
        if c.identifier == identifier:
            return c
    raise FrostError(f"unknown identifier {identifier}: not in the commitment list")


# --- helper functions (RFC 9591 Section 4) ----------------------------------------------

def nonce_generate(secret: bytes, rng: Rng | None = None) -> bytes:
    """Section 4.1: H3(random_bytes(32) || SerializeScalar(secret))."""
    secret = decode_scalar(secret, "secret")
    random_bytes = (rng or secrets.token_bytes)(32)
    if not isinstance(random_bytes, bytes) or len(random_bytes) != 32:
        raise FrostError("rng must return 32 bytes")
    return H3(random_bytes + secret)


def _lagrange(ids: Sequence[int], at: int = 0) -> list[bytes]:
    """The Lagrange coefficients over the identifiers ``ids`` at ``at``, as scalars."""
    if len(set(ids)) != len(ids):
        raise FrostError("duplicate identifier in participant list")
    return [c.to_bytes(SCALAR_SIZE, "little") for c in lagrange_coefficients(ids, at, L)]


def derive_interpolating_value(participant_list: Sequence[int], x_i: int) -> bytes:
    """Section 4.2: Lagrange coefficient of x_i at 0 over the participant identifiers."""
    ids = [_check_identifier(x) for x in participant_list]
    lambdas = _lagrange(ids)
    if _check_identifier(x_i) not in ids:
        raise FrostError(f"unknown identifier {x_i}: not in participant list {sorted(ids)}")
    return lambdas[ids.index(x_i)]


def encode_group_commitment_list(commitment_list: Iterable[SigningCommitment]) -> bytes:
    """Section 4.3: identifier || hiding || binding for each commitment, in identifier order."""
    return b"".join(encode_identifier(c.identifier) + c.hiding + c.binding
                    for c in _commitment_list(commitment_list))


def compute_binding_factor_inputs(group_public_key: bytes,
                                  commitment_list: Iterable[SigningCommitment],
                                  msg: bytes) -> dict[int, bytes]:
    """Section 4.4: rho_input per identifier = PK || H4(msg) || H5(commitments) || id."""
    pk = decode_element(group_public_key, "group public key")
    msg = _check_message(msg)
    clist = _commitment_list(commitment_list)
    prefix = pk + H4(msg) + H5(encode_group_commitment_list(clist))
    return {c.identifier: prefix + encode_identifier(c.identifier) for c in clist}


def compute_binding_factors(group_public_key: bytes,
                            commitment_list: Iterable[SigningCommitment],
                            msg: bytes) -> dict[int, bytes]:
    """Section 4.4: binding factor rho_i = H1(rho_input_i) for every identifier."""
    return {i: H1(rho_input) for i, rho_input in
            compute_binding_factor_inputs(group_public_key, commitment_list, msg).items()}


def compute_group_commitment(commitment_list: Iterable[SigningCommitment],
                             binding_factors: Mapping[int, bytes]) -> bytes:
    """Section 4.5: R = sum(D_i + rho_i * E_i); the identity is rejected."""
    group_commitment = _IDENTITY
    for c in _commitment_list(commitment_list):
        if c.identifier not in binding_factors:
            raise FrostError(f"no binding factor for identifier {c.identifier}")
        rho = decode_scalar(binding_factors[c.identifier], f"binding factor {c.identifier}")
        group_commitment = _add(group_commitment, _add(c.hiding, _mul(c.binding, rho)))
    if group_commitment == _IDENTITY:
        raise FrostError("group commitment is the identity element")
    return group_commitment


def compute_challenge(group_commitment: bytes, group_public_key: bytes, msg: bytes) -> bytes:
    """Section 4.6: c = H2(R || PK || msg), as in RFC 8032."""
    r = decode_element(group_commitment, "group commitment")
    pk = decode_element(group_public_key, "group public key")
    return H2(r + pk + _check_message(msg))


# --- round one: commitment (RFC 9591 Section 5.1) ---------------------------------------

def commit(identifier: int, sk_i: bytes, rng: Rng | None = None
           ) -> tuple[SigningNonces, SigningCommitment]:
    """Draw hiding then binding nonce with nonce_generate(sk_i); return nonces and commitment.

    ``rng(32)`` supplies the nonce randomness (default ``secrets.token_bytes``); tests inject
    the RFC vectors' randomness through it.
    """
    _check_identifier(identifier)
    sk_i = decode_scalar(sk_i, "secret share")
    hiding = nonce_generate(sk_i, rng)
    binding = nonce_generate(sk_i, rng)
    if _is_zero(hiding) or _is_zero(binding):  # probability ~2**-252
        raise FrostError("zero nonce drawn; commit again")
    return (SigningNonces(hiding, binding),
            SigningCommitment(identifier, _base(hiding), _base(binding)))


# --- round two: signature share (RFC 9591 Section 5.2) ----------------------------------

def sign(identifier: int, sk_i: bytes, group_pk: bytes, nonces: SigningNonces,
         message: bytes, commitments: Iterable[SigningCommitment], *,
         min_signers: int | None = None) -> bytes:
    """z_i = hiding_nonce + binding_nonce * rho_i + lambda_i * sk_i * c.

    Checks that this signer's own commitment in the list matches ``nonces`` (a coordinator
    swapping it would otherwise make the signer produce a share for someone else's nonces).
    """
    _check_identifier(identifier)
    sk_i = decode_scalar(sk_i, "secret share")
    group_pk = decode_element(group_pk, "group public key")
    message = _check_message(message)
    if not isinstance(nonces, SigningNonces):
        raise FrostError(f"nonces must be SigningNonces, got {type(nonces).__name__}")
    clist = _commitment_list(commitments, min_signers)
    own = _find(clist, identifier)
    if own.hiding != _base(nonces.hiding) or own.binding != _base(nonces.binding):
        raise FrostError(f"commitment for identifier {identifier} does not match these nonces")

    binding_factors = compute_binding_factors(group_pk, clist, message)
    group_commitment = compute_group_commitment(clist, binding_factors)
    lambda_i = derive_interpolating_value([c.identifier for c in clist], identifier)
    challenge = compute_challenge(group_commitment, group_pk, message)
    return _sadd(_sadd(nonces.hiding, _smul(nonces.binding, binding_factors[identifier])),
                 _smul(_smul(lambda_i, sk_i), challenge))


# --- aggregation and identifiable abort (RFC 9591 Sections 5.3, 5.4) --------------------

def verify_share(identifier: int, pk_i: bytes, commitment_i: SigningCommitment, z_i: bytes,
                 message: bytes, commitments: Iterable[SigningCommitment],
                 group_pk: bytes) -> bool:
    """Section 5.4 verify_signature_share: z_i * G == D_i + rho_i * E_i + (c * lambda_i) * PK_i.

    Returns False for a wrong or malformed ``z_i`` (signer-supplied data); raises FrostError
    for malformed coordinator-side inputs.
    """
    _check_identifier(identifier)
    pk_i = decode_element(pk_i, f"verification share of identifier {identifier}")
    group_pk = decode_element(group_pk, "group public key")
    message = _check_message(message)
    clist = _commitment_list(commitments)
    if _find(clist, identifier) != commitment_i:
        raise FrostError(f"commitment_i does not match the list entry for identifier {identifier}")
    try:
        z_i = decode_scalar(z_i, f"signature share of identifier {identifier}")
    except FrostError:
        return False

    binding_factors = compute_binding_factors(group_pk, clist, message)
    group_commitment = compute_group_commitment(clist, binding_factors)
    lambda_i = derive_interpolating_value([c.identifier for c in clist], identifier)
    challenge = compute_challenge(group_commitment, group_pk, message)

    comm_share = _add(commitment_i.hiding,
                      _mul(commitment_i.binding, binding_factors[identifier]))
    r = _add(comm_share, _mul(pk_i, _smul(challenge, lambda_i)))
    return hmac.compare_digest(_base(z_i), r)


def aggregate(commitments: Iterable[SigningCommitment], message: bytes, group_pk: bytes,
              shares: Mapping[int, bytes], *,
              verification_shares: Mapping[int, bytes] | None = None,
              min_signers: int | None = None) -> bytes:
    """Section 5.3: signature R || sum(z_i), checked against group_pk before it is returned.

    If the aggregate does not verify and ``verification_shares`` {id: PK_i} are given, each
    share is checked (Section 5.4) and ``InvalidShareError`` names the cheaters.
    """
    message = _check_message(message)
    group_pk = decode_element(group_pk, "group public key")
    clist = _commitment_list(commitments, min_signers)
    ids = [c.identifier for c in clist]
    if not isinstance(shares, Mapping):
        raise FrostError("shares must be a mapping {identifier: signature share}")
    missing = sorted(set(ids) - set(shares))
    if missing:
        raise FrostError(f"missing signature share for identifier(s) {missing}")
    extra = sorted(set(shares) - set(ids), key=repr)
    if extra:
        raise FrostError(f"signature share from unknown identifier(s) {extra}")
    malformed = []
    for i in ids:
        try:
            decode_scalar(shares[i])
        except FrostError:
            malformed.append(i)
    if malformed:
        raise InvalidShareError(malformed, "malformed signature share")

    binding_factors = compute_binding_factors(group_pk, clist, message)
    group_commitment = compute_group_commitment(clist, binding_factors)
    z = _ZERO
    for i in ids:
        z = _sadd(z, bytes(shares[i]))
    signature = group_commitment + z
    if verify(group_pk, message, signature):
        return signature
    if verification_shares is None:
        raise FrostError("aggregate signature does not verify; pass verification_shares "
                         "to identify the invalid share")
    bad = []
    for c in clist:
        if c.identifier not in verification_shares:
            raise FrostError(f"no verification share for identifier {c.identifier}")
        if not verify_share(c.identifier, verification_shares[c.identifier], c,
                            shares[c.identifier], message, clist, group_pk):
            bad.append(c.identifier)
    if bad:
        raise InvalidShareError(bad)
    raise FrostError("aggregate signature does not verify although every share does; "
                     "the verification shares do not match the group public key")


def verify(group_pk: bytes, message: bytes, signature: bytes) -> bool:
    """RFC 8032 Ed25519 verification (libsodium, cofactorless) of a FROST signature."""
    pk = decode_element(group_pk, "group public key")
    message = _check_message(message)
    if not isinstance(signature, (bytes, bytearray, memoryview)):
        return False
    if len(signature) != SIGNATURE_SIZE:
        return False
    try:
        VerifyKey(pk).verify(message, bytes(signature))
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True


# --- key material helpers ---------------------------------------------------------------

def verification_share(sk_i: bytes) -> bytes:
    """PK_i = sk_i * G (also the group public key for the group secret)."""
    sk_i = decode_scalar(sk_i, "secret share")
    if _is_zero(sk_i):
        raise FrostError("secret share is zero; its verification share is the identity")
    return _base(sk_i)


def group_public_key(verification_shares: Mapping[int, bytes], degree: int | None = None) -> bytes:
    """PK = sum(lambda_i * PK_i): interpolate the verification shares at 0 in the exponent.

    Without ``degree`` all given shares are used (they must be t+1 or more consistent ones).
    With ``degree`` t, the t+1 lowest identifiers are interpolated and every further share
    is checked to lie on the same degree-t polynomial.
    """
    if not isinstance(verification_shares, Mapping) or not verification_shares:
        raise FrostError("verification_shares must be a non-empty mapping {identifier: PK_i}")
    ids = sorted(_check_identifier(i) for i in verification_shares)
    points = {i: decode_element(verification_shares[i], f"verification share of identifier {i}")
              for i in ids}
    if degree is not None:
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
            raise FrostError(f"degree must be a non-negative int, got {degree!r}")
        if len(ids) < degree + 1:
            raise FrostError(f"too few verification shares: {len(ids)}, need {degree + 1}")
    base_ids = ids if degree is None else ids[:degree + 1]

    def interpolate(at: int) -> bytes:
        acc = _IDENTITY
        for i, lambda_i in zip(base_ids, _lagrange(base_ids, at)):
            acc = _add(acc, _mul(points[i], lambda_i))
        return acc

    for j in ids[len(base_ids):]:
        if interpolate(j) != points[j]:
            raise FrostError(f"the verification shares lie on no degree-{degree} polynomial:"
                             f" a party dealt or published a wrong share")
    pk = interpolate(0)
    if pk == _IDENTITY:
        raise FrostError("interpolated group public key is the identity")
    return pk

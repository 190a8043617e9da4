"""FROST(Ed25519, SHA-512) per RFC 9591: the Appendix E.1 vectors through the module's own
functions, threshold signing with Shamir-dealt keys (checked by libsodium and OpenSSL),
identifiable abort, and rejection of malformed input."""

import itertools
import json
import secrets
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nacl import bindings as na

from protocols import frost
from protocols.frost import FrostError, InvalidShareError, SigningCommitment, SigningNonces

VECTORS = json.loads((Path(__file__).parent / "data" / "frost_ed25519_sha512.json").read_text())
L = frost.L
h = bytes.fromhex
fuzz = settings(suppress_health_check=list(HealthCheck))  # examples: tests/conftest.py


def openssl_verify(pk: bytes, msg: bytes, sig: bytes) -> None:
    Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)  # raises InvalidSignature


def le(x: int) -> bytes:
    return (x % L).to_bytes(32, "little")


def deal(min_signers: int, n: int, secret: int | None = None):
    """Test-only trusted dealer: Shamir shares f(1..n) of a degree (min_signers-1) polynomial."""
    coeffs = [secrets.randbelow(L - 1) + 1 if secret is None else secret]
    coeffs += [secrets.randbelow(L) for _ in range(min_signers - 1)]
    shares = {i: le(sum(a * pow(i, k, L) for k, a in enumerate(coeffs))) for i in range(1, n + 1)}
    return le(coeffs[0]), shares


def run_signing(signers, shares, group_pk, msg, **kw):
    """Both rounds for the given signer identifiers; returns (signature, commitments, z)."""
    round_one = {i: frost.commit(i, shares[i]) for i in signers}
    commitments = [round_one[i][1] for i in signers]
    z = {i: frost.sign(i, shares[i], group_pk, round_one[i][0], msg, commitments, **kw)
         for i in signers}
    return frost.aggregate(commitments, msg, group_pk, z, **kw), commitments, z


# --- RFC 9591 Appendix E.1 vectors ------------------------------------------------------

class TestRFC9591Vectors:
    inputs = VECTORS["inputs"]
    gsk = h(inputs["group_secret_key"])
    gpk = h(inputs["group_public_key"])
    msg = h(inputs["message"])
    shares = {p["identifier"]: h(p["participant_share"]) for p in inputs["participant_shares"]}
    r1 = {r["identifier"]: r for r in VECTORS["round_one_outputs"]}
    r2 = {r["identifier"]: r for r in VECTORS["round_two_outputs"]}

    def round_one(self):
        out = {}
        for i in self.inputs["participant_list"]:
            r = self.r1[i]
            randomness = iter([h(r["hiding_nonce_randomness"]), h(r["binding_nonce_randomness"])])
            out[i] = frost.commit(i, self.shares[i], rng=lambda n: next(randomness))
        return out

    def commitments(self):
        return [c for _, c in self.round_one().values()]

    def test_source_recorded(self):
        assert "RFC 9591" in VECTORS["source"]
        assert VECTORS["config"]["context_string"].encode() == frost.CONTEXT_STRING

    def test_dealer_shares_and_keys(self):
        (a1,) = [int.from_bytes(h(x), "little")
                 for x in self.inputs["share_polynomial_coefficients"]]
        s = int.from_bytes(self.gsk, "little")
        for i, share in self.shares.items():
            assert share == le(s + a1 * i)
        assert frost.verification_share(self.gsk) == self.gpk
        pks = {i: frost.verification_share(sk) for i, sk in self.shares.items()}
        assert frost.group_public_key({1: pks[1], 3: pks[3]}) == self.gpk
        assert frost.group_public_key(pks, degree=1) == self.gpk

    def test_nonce_generate(self):
        for i, r in self.r1.items():
            for kind in ("hiding", "binding"):
                rand = h(r[f"{kind}_nonce_randomness"])
                nonce = frost.nonce_generate(self.shares[i], rng=lambda n: rand)
                assert nonce.hex() == r[f"{kind}_nonce"]

    def test_round_one(self):
        for i, (nonces, commitment) in self.round_one().items():
            r = self.r1[i]
            assert nonces.hiding.hex() == r["hiding_nonce"]
            assert nonces.binding.hex() == r["binding_nonce"]
            assert commitment == SigningCommitment(i, h(r["hiding_nonce_commitment"]),
                                                   h(r["binding_nonce_commitment"]))

    def test_binding_factors(self):
        commitments = self.commitments()
        inputs = frost.compute_binding_factor_inputs(self.gpk, commitments, self.msg)
        factors = frost.compute_binding_factors(self.gpk, commitments, self.msg)
        assert sorted(inputs) == sorted(factors) == self.inputs["participant_list"]
        for i, r in self.r1.items():
            assert inputs[i].hex() == r["binding_factor_input"]
            assert factors[i].hex() == r["binding_factor"]
            assert frost.H1(inputs[i]) == factors[i]

    def test_sig_shares_verify_shares_and_aggregate(self):
        round_one = self.round_one()
        commitments = [c for _, c in round_one.values()]
        z = {}
        for i, (nonces, commitment) in round_one.items():
            z[i] = frost.sign(i, self.shares[i], self.gpk, nonces, self.msg, commitments)
            assert z[i].hex() == self.r2[i]["sig_share"]
            assert frost.verify_share(i, frost.verification_share(self.shares[i]), commitment,
                                      z[i], self.msg, commitments, self.gpk)
        sig = frost.aggregate(commitments, self.msg, self.gpk, z)
        assert sig.hex() == VECTORS["final_output"]["sig"]
        assert frost.verify(self.gpk, self.msg, sig)
        openssl_verify(self.gpk, self.msg, sig)

    def test_commitment_order_is_irrelevant(self):
        commitments = self.commitments()
        z = {i: h(r["sig_share"]) for i, r in self.r2.items()}
        sig = frost.aggregate(list(reversed(commitments)), self.msg, self.gpk, z)
        assert sig.hex() == VECTORS["final_output"]["sig"]

    def test_challenge_is_rfc8032(self):
        sig = h(VECTORS["final_output"]["sig"])
        c = frost.compute_challenge(sig[:32], self.gpk, self.msg)
        # z*G == R + c*PK, i.e. plain RFC 8032 verification equation
        lhs = na.crypto_scalarmult_ed25519_base_noclamp(sig[32:])
        c_pk = na.crypto_scalarmult_ed25519_noclamp(c, self.gpk)
        rhs = na.crypto_core_ed25519_add(sig[:32], c_pk)
        assert lhs == rhs

    def test_interpolating_value(self):
        lam1 = frost.derive_interpolating_value([1, 3], 1)   # 3 / (3 - 1)
        lam3 = frost.derive_interpolating_value([1, 3], 3)   # 1 / (1 - 3)
        assert int.from_bytes(lam1, "little") * 2 % L == 3
        assert int.from_bytes(lam3, "little") * -2 % L == 1


# --- threshold signing with dealt keys --------------------------------------------------

@pytest.mark.parametrize("min_signers,n", [(2, 3), (3, 5)])
def test_every_signer_subset_produces_valid_signatures(min_signers, n):
    gsk, shares = deal(min_signers, n)
    gpk = frost.verification_share(gsk)
    pks = {i: frost.verification_share(s) for i, s in shares.items()}
    assert frost.group_public_key(pks, degree=min_signers - 1) == gpk
    for k in range(min_signers, n + 1):
        for signers in itertools.combinations(range(1, n + 1), k):
            assert frost.group_public_key({i: pks[i] for i in signers}) == gpk
            msg = f"pay {signers} ".encode() + secrets.token_bytes(8)
            sig, commitments, z = run_signing(signers, shares, gpk, msg, min_signers=min_signers)
            assert len(sig) == 64
            assert frost.verify(gpk, msg, sig)
            openssl_verify(gpk, msg, sig)
            assert not frost.verify(gpk, msg + b"!", sig)
            for c in commitments:
                assert frost.verify_share(c.identifier, pks[c.identifier], c, z[c.identifier],
                                          msg, commitments, gpk)


def test_too_few_signers_cannot_sign():
    gsk, shares = deal(3, 5)
    gpk = frost.verification_share(gsk)
    with pytest.raises(FrostError, match="too few signers"):
        run_signing((1, 2), shares, gpk, b"m", min_signers=3)
    # without the guard, below-threshold shares simply do not make a valid signature
    with pytest.raises(FrostError, match="does not verify"):
        run_signing((1, 2), shares, gpk, b"m")


def test_empty_message():
    gsk, shares = deal(2, 3)
    gpk = frost.verification_share(gsk)
    sig, _, _ = run_signing((2, 3), shares, gpk, b"")
    openssl_verify(gpk, b"", sig)


# --- identifiable abort -----------------------------------------------------------------

def test_corrupted_share_is_identified():
    gsk, shares = deal(3, 5)
    gpk = frost.verification_share(gsk)
    pks = {i: frost.verification_share(s) for i, s in shares.items()}
    signers = (1, 3, 4)
    msg = b"transfer 10"
    round_one = {i: frost.commit(i, shares[i]) for i in signers}
    commitments = [round_one[i][1] for i in signers]
    z = {i: frost.sign(i, shares[i], gpk, round_one[i][0], msg, commitments) for i in signers}
    z[3] = na.crypto_core_ed25519_scalar_add(z[3], le(1))

    for c in commitments:
        ok = frost.verify_share(c.identifier, pks[c.identifier], c, z[c.identifier], msg,
                                commitments, gpk)
        assert ok is (c.identifier != 3)
    with pytest.raises(InvalidShareError, match=r"identifier\(s\) \[3\]") as err:
        frost.aggregate(commitments, msg, gpk, z, verification_shares=pks)
    assert err.value.identifiers == [3]
    with pytest.raises(FrostError, match="does not verify"):
        frost.aggregate(commitments, msg, gpk, z)


def test_share_checked_against_wrong_key_or_message_fails():
    gsk, shares = deal(2, 3)
    gpk = frost.verification_share(gsk)
    sig, commitments, z = run_signing((1, 2), shares, gpk, b"m")
    c1 = commitments[0]
    pk1 = frost.verification_share(shares[1])
    pk2 = frost.verification_share(shares[2])
    assert frost.verify_share(1, pk1, c1, z[1], b"m", commitments, gpk)
    assert not frost.verify_share(1, pk2, c1, z[1], b"m", commitments, gpk)
    assert not frost.verify_share(1, pk1, c1, z[1], b"other", commitments, gpk)
    assert not frost.verify_share(1, pk1, c1, le(L), b"m", commitments, gpk)  # non-canonical
    assert not frost.verify_share(1, pk1, c1, bytes(32), b"m", commitments, gpk)  # zero share
    with pytest.raises(FrostError, match="does not match the list entry"):
        frost.verify_share(1, pk1, commitments[1], z[1], b"m", commitments, gpk)


def test_aggregate_against_wrong_group_key_names_every_share():
    gsk, shares = deal(2, 3)
    gpk = frost.verification_share(gsk)
    other_gpk = frost.verification_share(deal(2, 3)[0])
    _, commitments, z = run_signing((1, 2), shares, gpk, b"m")
    pks = {i: frost.verification_share(s) for i, s in shares.items()}
    with pytest.raises(InvalidShareError) as err:
        frost.aggregate(commitments, b"m", other_gpk, z, verification_shares=pks)
    assert err.value.identifiers == [1, 2]


def test_key_mismatch_is_not_blamed_on_signers():
    """Shares that all check out against PK_i but whose PK_i do not interpolate to group_pk."""
    _, shares = deal(2, 3)
    wrong_gpk = frost.verification_share(deal(2, 3)[0])
    pks = {i: frost.verification_share(s) for i, s in shares.items()}
    round_one = {i: frost.commit(i, shares[i]) for i in (1, 3)}
    commitments = [c for _, c in round_one.values()]
    z = {i: frost.sign(i, shares[i], wrong_gpk, n, b"m", commitments)
         for i, (n, _) in round_one.items()}
    assert all(frost.verify_share(c.identifier, pks[c.identifier], c, z[c.identifier], b"m",
                                  commitments, wrong_gpk) for c in commitments)
    with pytest.raises(FrostError, match="do not match the group public key") as err:
        frost.aggregate(commitments, b"m", wrong_gpk, z, verification_shares=pks)
    assert not isinstance(err.value, InvalidShareError)


def test_malformed_share_named_by_aggregate():
    gsk, shares = deal(2, 3)
    gpk = frost.verification_share(gsk)
    _, commitments, z = run_signing((1, 3), shares, gpk, b"m")
    with pytest.raises(InvalidShareError, match=r"malformed.*\[1\]"):
        frost.aggregate(commitments, b"m", gpk, {**z, 1: b"\xff" * 32})
    with pytest.raises(FrostError, match=r"missing signature share.*\[3\]"):
        frost.aggregate(commitments, b"m", gpk, {1: z[1]})
    with pytest.raises(FrostError, match=r"unknown identifier.*\[2\]"):
        frost.aggregate(commitments, b"m", gpk, {**z, 2: z[1]})


# --- malformed input --------------------------------------------------------------------

G = na.crypto_scalarmult_ed25519_base_noclamp(le(1))
IDENTITY = b"\x01" + bytes(31)
ORDER8 = h("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")  # small order
MIXED = na.crypto_core_ed25519_add(G, ORDER8)  # on the curve, not in the prime-order subgroup
NONCANONICAL = b"\xee" + b"\xff" * 30 + b"\x7f"  # y = p + 1, not reduced

BAD_POINTS = {"identity": IDENTITY, "small-order": ORDER8, "torsion component": MIXED,
              "non-canonical": NONCANONICAL, "short": G[:31], "long": G + b"\x00"}


@pytest.mark.parametrize("name", sorted(BAD_POINTS))
def test_bad_points_rejected(name):
    with pytest.raises(FrostError):
        frost.decode_element(BAD_POINTS[name])
    with pytest.raises(FrostError, match="identifier 2"):
        SigningCommitment(2, BAD_POINTS[name], G)
    with pytest.raises(FrostError, match="group public key"):
        frost.verify(BAD_POINTS[name], b"m", bytes(64))


def test_bad_scalars_rejected():
    for bad in (le(L - 1)[:31], le(0) + b"\x00", L.to_bytes(32, "little"), b"\xff" * 32,
                (2**255 - 19).to_bytes(32, "little")):
        with pytest.raises(FrostError):
            frost.decode_scalar(bad)
    assert frost.decode_scalar(le(L - 1)) == le(L - 1)
    with pytest.raises(FrostError, match="secret share"):
        frost.commit(1, L.to_bytes(32, "little"))
    with pytest.raises(FrostError, match="must be bytes"):
        frost.decode_scalar(7)
    with pytest.raises(FrostError, match="zero"):
        frost.verification_share(bytes(32))
    with pytest.raises(FrostError):
        SigningNonces(b"\xff" * 32, le(1))


@pytest.mark.parametrize("bad", [0, -1, L, True, 1.0, "1", None])
def test_bad_identifiers_rejected(bad):
    with pytest.raises(FrostError, match="identifier"):
        frost.encode_identifier(bad)
    with pytest.raises(FrostError, match="identifier"):
        SigningCommitment(bad, G, G)


_MISUSE_GSK, _MISUSE_SHARES = deal(2, 3)


class TestSigningMisuse:
    shares = _MISUSE_SHARES
    gpk = frost.verification_share(_MISUSE_GSK)
    r1 = {i: frost.commit(i, _MISUSE_SHARES[i]) for i in (1, 2, 3)}

    def comms(self, *ids):
        return [self.r1[i][1] for i in ids]

    def test_duplicate_identifiers(self):
        dup = self.comms(1, 2) + [self.r1[1][1]]
        with pytest.raises(FrostError, match="duplicate identifier 1"):
            frost.sign(1, self.shares[1], self.gpk, self.r1[1][0], b"m", dup)
        with pytest.raises(FrostError, match="duplicate identifier"):
            frost.derive_interpolating_value([1, 2, 2], 1)

    def test_unknown_identifier(self):
        with pytest.raises(FrostError, match="unknown identifier 3"):
            frost.sign(3, self.shares[3], self.gpk, self.r1[3][0], b"m", self.comms(1, 2))
        with pytest.raises(FrostError, match="unknown identifier 3"):
            frost.derive_interpolating_value([1, 2], 3)

    def test_nonces_must_match_own_commitment(self):
        with pytest.raises(FrostError, match="does not match these nonces"):
            frost.sign(1, self.shares[1], self.gpk, self.r1[2][0], b"m", self.comms(1, 2))

    def test_message_type(self):
        for bad in ("text", 5, None, ["m"]):
            with pytest.raises(FrostError, match="message must be bytes"):
                frost.sign(1, self.shares[1], self.gpk, self.r1[1][0], bad, self.comms(1, 2))
            with pytest.raises(FrostError, match="message must be bytes"):
                frost.verify(self.gpk, bad, bytes(64))

    def test_bad_containers(self):
        with pytest.raises(FrostError, match="too few signers"):
            frost.sign(1, self.shares[1], self.gpk, self.r1[1][0], b"m", [])
        with pytest.raises(FrostError, match="SigningCommitment"):
            frost.sign(1, self.shares[1], self.gpk, self.r1[1][0], b"m", [(1, G, G)])
        with pytest.raises(FrostError, match="SigningNonces"):
            frost.sign(1, self.shares[1], self.gpk, (1, 2), b"m", self.comms(1, 2))
        with pytest.raises(FrostError, match="32 bytes"):
            frost.nonce_generate(self.shares[1], rng=lambda n: b"short")

    def test_group_key_from_shares(self):
        pks = {i: frost.verification_share(s) for i, s in self.shares.items()}
        with pytest.raises(FrostError, match="too few verification shares"):
            frost.group_public_key({1: pks[1]}, degree=1)
        with pytest.raises(FrostError, match="lie on no degree-1 polynomial"):
            frost.group_public_key({**pks, 3: G}, degree=1)
        with pytest.raises(FrostError, match="identity"):
            frost.group_public_key({1: pks[1], 2: IDENTITY})

    def test_nonce_repr_hides_secrets(self):
        nonces = self.r1[1][0]
        assert nonces.hiding.hex() not in repr(nonces)


# --- fuzzing of decoders and verify -----------------------------------------------------

@fuzz
@given(st.binary(min_size=0, max_size=40))
def test_fuzz_decode_scalar(data):
    try:
        s = frost.decode_scalar(data)
    except FrostError:
        assert len(data) != 32 or int.from_bytes(data, "little") >= L
    else:
        assert s == data and int.from_bytes(s, "little") < L


@fuzz
@given(st.integers(min_value=0, max_value=2**256 - 1))
def test_fuzz_decode_scalar_boundary(x):
    data = x.to_bytes(32, "little")
    if x < L:
        assert frost.decode_scalar(data) == data
    else:
        with pytest.raises(FrostError):
            frost.decode_scalar(data)


@fuzz
@given(st.binary(min_size=32, max_size=32))
def test_fuzz_decode_element(data):
    try:
        p = frost.decode_element(data)
    except FrostError:
        return
    # accepted points have prime order L: (L-1)*P + P == identity
    minus_p = na.crypto_scalarmult_ed25519_noclamp(le(L - 1), p)
    assert na.crypto_core_ed25519_add(minus_p, p) == IDENTITY


@fuzz
@given(st.integers(min_value=1, max_value=L - 1))
def test_fuzz_valid_points_accepted(k):
    assert frost.decode_element(na.crypto_scalarmult_ed25519_base_noclamp(le(k))) is not None


@fuzz
@given(st.binary(min_size=0, max_size=70), st.binary(max_size=16))
def test_fuzz_verify_never_raises_on_signature_bytes(sig, msg):
    assert frost.verify(h(VECTORS["inputs"]["group_public_key"]), msg, sig) in (True, False)


@fuzz
@given(st.one_of(st.integers(), st.booleans(), st.none(), st.text(max_size=3)))
def test_fuzz_identifiers(x):
    try:
        enc = frost.encode_identifier(x)
    except FrostError:
        assert isinstance(x, bool) or not isinstance(x, int) or not 0 < x < L
    else:
        assert int.from_bytes(enc, "little") == x

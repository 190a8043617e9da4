"""Threshold ECDSA protocols in real MPyC party processes, checked with libsecp256k1
(coincurve) and eth-keys, code we did not write."""

import hashlib

import coincurve
import pytest
from eth_keys import keys as eth_keys

from protocols.secp256k1 import (HALF_N, N, CurveError, check_verification_shares,
                                 lagrange_at_zero)
from tests.mpc_harness import run_parties

DIGEST = hashlib.sha256(b"settlement").hexdigest()


def keygen(n, t):
    keys = run_parties("protocols.ecdsa:keygen", [[] for _ in range(n)], threshold=t)
    assert len({k["public_key"] for k in keys}) == 1
    assert len({tuple(k["verification_shares"]) for k in keys}) == 1
    return keys


def assert_valid(sig, public_key, digest=DIGEST):
    r, s, v = sig["r"], sig["s"], sig["y_parity"]
    assert 0 < s <= HALF_N  # low-s
    der = coincurve.PublicKey(bytes.fromhex(public_key))
    compact = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert der.verify(coincurve.ecdsa.cdata_to_der(coincurve.ecdsa.deserialize_compact(compact)),
                      bytes.fromhex(digest), hasher=None)
    recovered = eth_keys.Signature(vrs=(v, r, s)).recover_public_key_from_msg_hash(
        bytes.fromhex(digest))
    assert recovered.to_compressed_bytes().hex() == public_key


@pytest.mark.heavy
@pytest.mark.timeout(120)
def test_keygen_sign_presign_refresh_three_parties():
    keys = keygen(3, 1)
    pk = keys[0]["public_key"]
    # the shares interpolate to a key whose public key is the one published
    x = sum(c * k["share"] for c, k in zip(lagrange_at_zero([1, 2, 3]), keys)) % N
    assert coincurve.PrivateKey(x.to_bytes(32, "big")).public_key.format().hex() == pk
    check_verification_shares(keys[0]["verification_shares"], 1, pk)

    sigs = run_parties("protocols.ecdsa:sign", [[k["share"], [1, 2, 3], pk, DIGEST] for k in keys])
    assert len({tuple(sorted(s.items())) for s in sigs}) == 1
    assert_valid(sigs[0], pk)

    presigs = run_parties("protocols.ecdsa:presign", [[k["share"], [1, 2, 3], 2] for k in keys])
    for i in range(2):
        other = hashlib.sha256(b"tx %d" % i).hexdigest()
        online = run_parties("protocols.ecdsa:sign_presigned", [[p[i], pk, other] for p in presigs])
        assert_valid(online[0], pk, other)

    fresh = run_parties("protocols.ecdsa:refresh", [[k["share"], pk] for k in keys], threshold=1)
    assert all(f["share"] != k["share"] for f, k in zip(fresh, keys))
    sigs = run_parties("protocols.ecdsa:sign", [[f["share"], [1, 2, 3], pk, DIGEST] for f in fresh])
    assert_valid(sigs[0], pk)
    # an old share mixed with new ones is useless: the joint signature does not verify
    mixed = [keys[0]["share"], fresh[1]["share"], fresh[2]["share"]]
    with pytest.raises(RuntimeError, match="does not verify"):
        run_parties("protocols.ecdsa:sign", [[m, [1, 2, 3], pk, DIGEST] for m in mixed])


@pytest.mark.heavy
@pytest.mark.timeout(120)
def test_any_three_of_five_sign_with_lagrange_conversion():
    keys = keygen(5, 1)
    pk = keys[0]["public_key"]
    for subset in ([0, 1, 2], [1, 3, 4], [0, 2, 4]):
        points = [i + 1 for i in subset]
        sigs = run_parties("protocols.ecdsa:sign",
                           [[keys[i]["share"], points, pk, DIGEST] for i in subset])
        assert_valid(sigs[0], pk)


def test_tampered_verification_share_is_detected():
    import coincurve as cc
    shares = [cc.PrivateKey.from_int(v).public_key.format().hex() for v in (5, 9, 13)]  # f(x)=1+4x
    pk = cc.PrivateKey.from_int(1).public_key.format().hex()
    check_verification_shares(shares, 1, pk)
    shares[2] = cc.PrivateKey.from_int(14).public_key.format().hex()
    with pytest.raises(CurveError, match="lie on no degree-1 polynomial through the public key"):
        check_verification_shares(shares, 1, pk)


def test_a_published_point_that_does_not_parse_names_its_sender():
    from protocols.ecdsa import _verification_shares
    good = coincurve.PrivateKey.from_int(5).public_key.format()
    assert _verification_shares([good, good]) == [good.hex()] * 2
    for bad in (b"\x02" + b"\xff" * 32, b"", 7):
        with pytest.raises(CurveError, match=r"session party 1 \(point 2\) sent a verification"
                                             r" share that is no secp256k1 point"):
            _verification_shares([good, bad, good])

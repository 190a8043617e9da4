"""Resharing a key to a new committee (protocols.reshare) in real MPyC party processes.

Keys come from the real keygen protocols; after each resharing the new shares are checked
with code we did not write: any t_new+1 of them interpolate to a secret whose public key
libsecp256k1 (coincurve) or libsodium computes, the new committee signs (threshold ECDSA in
MPC, FROST) and OpenSSL (cryptography) verifies; a removed party's old share does not
combine with new shares; cheating dealers are named.
"""

from __future__ import annotations

import hashlib
import itertools

import coincurve
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from nacl import bindings as sodium

from protocols import frost
from protocols.reshare import Dealing, ResharePlan, in_exponent, reshare
from protocols.secp256k1 import N
from protocols.shamir import lagrange_coefficients
from tests.mpc_harness import run_parties

DIGEST = hashlib.sha256(b"settlement after resharing").hexdigest()
ORDER = {"secp256k1": N, "ed25519": frost.L}
KEYGEN = {"secp256k1": "protocols.ecdsa:keygen", "ed25519": "protocols.ed25519_dkg:keygen"}


# -- helpers ---------------------------------------------------------------------------------

def keygen(curve: str, n: int, t: int) -> list[dict]:
    return run_parties(KEYGEN[curve], [[] for _ in range(n)], threshold=t)


def make_plan(curve, key, old_threshold, old_points, new_threshold, new_points) -> dict:
    return {"curve": curve, "public_key": key["public_key"], "old_threshold": old_threshold,
            "old_verification_shares": key["verification_shares"], "old_points": old_points,
            "new_threshold": new_threshold, "new_points": new_points}


def run_reshare(plan: dict, old_shares: dict[int, int], target="protocols.reshare:reshare",
                extra=None) -> list[dict]:
    """Every session party runs the resharing; dealers (by session index) pass a share."""
    extra = extra or {}
    return run_parties(target, [[plan, old_shares.get(pid), *extra.get(pid, [])]
                                for pid in range(len(plan["old_points"]))])


def secret_at_zero(curve: str, points: list[int], shares: list[int]) -> int:
    q = ORDER[curve]
    return sum(c * s for c, s in zip(lagrange_coefficients(points, 0, q), shares)) % q


def public_key_of(curve: str, secret: int) -> str:
    """The public key of a scalar, by libsecp256k1 or libsodium directly."""
    if curve == "secp256k1":
        return coincurve.PrivateKey.from_int(secret).public_key.format().hex()
    return sodium.crypto_scalarmult_ed25519_base_noclamp(secret.to_bytes(32, "little")).hex()


def check_outcome(curve, outcome, plan) -> dict[int, int]:
    """All parties agree on the new public sharing under the old key; the new shares (by new
    point) match their verification shares and any t_new+1 of them give the old key."""
    t_new = plan["new_threshold"]
    assert len({(o["public_key"], tuple(o["verification_shares"])) for o in outcome}) == 1
    assert all(o["public_key"] == plan["public_key"] and o["threshold"] == t_new
               for o in outcome)
    new_shares = {}
    for pid, (o, x) in enumerate(zip(outcome, plan["new_points"])):
        if x is None:
            assert o["share"] is None, "a party only in the old committee got a share"
        else:
            new_shares[x] = o["share"]
    vshares = outcome[0]["verification_shares"]
    assert len(vshares) == len(new_shares)
    for x, share in new_shares.items():
        assert public_key_of(curve, share) == vshares[x - 1]
    for subset in itertools.combinations(sorted(new_shares), t_new + 1):
        secret = secret_at_zero(curve, list(subset), [new_shares[x] for x in subset])
        assert public_key_of(curve, secret) == plan["public_key"]
    return new_shares


def ecdsa_sign_with_new_committee(new_shares: dict[int, int], t_new: int, public_key: str):
    """Threshold ECDSA among 2t+1 new parties; OpenSSL and libsecp256k1 verify it."""
    signers = sorted(new_shares)[:2 * t_new + 1]
    sigs = run_parties("protocols.ecdsa:sign", [[new_shares[x], signers, public_key, DIGEST]
                                                 for x in signers])
    r, s = sigs[0]["r"], sigs[0]["s"]
    der = utils.encode_dss_signature(r, s)
    digest = bytes.fromhex(DIGEST)
    openssl_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(),
                                                               bytes.fromhex(public_key))
    openssl_key.verify(der, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    assert coincurve.PublicKey(bytes.fromhex(public_key)).verify(der, digest, hasher=None)


def frost_sign_with_new_committee(new_shares: dict[int, int], t_new: int, public_key: str):
    """FROST among t+1 new parties; OpenSSL verifies the Ed25519 signature."""
    signers = sorted(new_shares)[-(t_new + 1):]
    scalars = {i: new_shares[i].to_bytes(32, "little") for i in signers}
    group_pk = bytes.fromhex(public_key)
    message = b"a FROST signature by the new committee"
    round_one = {i: frost.commit(i, scalars[i]) for i in signers}
    commitments = [round_one[i][1] for i in signers]
    z = {i: frost.sign(i, scalars[i], group_pk, round_one[i][0], message, commitments)
         for i in signers}
    signature = frost.aggregate(commitments, message, group_pk, z)
    Ed25519PublicKey.from_public_bytes(group_pk).verify(signature, message)


def assert_old_share_useless(curve, removed_share: int, removed_point: int,
                             new_shares: dict[int, int], t_new: int, public_key: str):
    """The removed party's old share, in place of any new share at its point or beside new
    shares, interpolates to no secret of the key."""
    others = [x for x in sorted(new_shares) if x != removed_point]
    for subset in itertools.combinations(others, t_new):
        points = [*subset, removed_point]
        secret = secret_at_zero(curve, points, [*(new_shares[x] for x in subset), removed_share])
        assert public_key_of(curve, secret) != public_key


# -- the committee changes -------------------------------------------------------------------

@pytest.mark.heavy
@pytest.mark.timeout(180)
def test_ecdsa_three_parties_to_four_with_a_qualified_subset_dealing():
    """2-of-3 -> 2-of-4: old parties 0 and 2 deal, old party 1 only receives."""
    old = keygen("secp256k1", 3, 1)
    plan = make_plan("secp256k1", old[0], 1, [1, None, 3, None], 1, [1, 2, 3, 4])
    outcome = run_reshare(plan, {0: old[0]["share"], 2: old[2]["share"]})
    new_shares = check_outcome("secp256k1", outcome, plan)
    assert all(new_shares[i + 1] != old[i]["share"] for i in range(3))
    ecdsa_sign_with_new_committee(new_shares, 1, plan["public_key"])


@pytest.mark.heavy
@pytest.mark.timeout(180)
def test_ecdsa_three_parties_to_five_raising_the_threshold():
    """t 1 -> 2, n 3 -> 5, all three old holders dealing (more than a qualified set)."""
    old = keygen("secp256k1", 3, 1)
    plan = make_plan("secp256k1", old[0], 1, [1, 2, 3, None, None], 2, [1, 2, 3, 4, 5])
    outcome = run_reshare(plan, {i: old[i]["share"] for i in range(3)})
    new_shares = check_outcome("secp256k1", outcome, plan)
    # two shares no longer determine the key
    pair = secret_at_zero("secp256k1", [1, 2], [new_shares[1], new_shares[2]])
    assert public_key_of("secp256k1", pair) != plan["public_key"]
    ecdsa_sign_with_new_committee(new_shares, 2, plan["public_key"])


@pytest.mark.heavy
@pytest.mark.timeout(180)
def test_ecdsa_removing_a_party():
    """Old {0, 1, 2} -> new {0, 1, 3}: the removed party 2 deals and gets a confirmation;
    its old share then combines with no new share."""
    old = keygen("secp256k1", 3, 1)
    # session: old parties 0, 1, 2 and the newcomer 3; new points 1, 2 for 0, 1 and 3 for 3
    plan = make_plan("secp256k1", old[0], 1, [None, 2, 3, None], 1, [1, 2, None, 3])
    outcome = run_reshare(plan, {1: old[1]["share"], 2: old[2]["share"]})
    new_shares = check_outcome("secp256k1", outcome, plan)
    assert outcome[2]["share"] is None
    assert_old_share_useless("secp256k1", old[2]["share"], 3, new_shares, 1, plan["public_key"])
    ecdsa_sign_with_new_committee(new_shares, 1, plan["public_key"])


@pytest.mark.heavy
@pytest.mark.timeout(180)
def test_frost_key_moves_to_a_larger_committee_without_party_zero():
    """Ed25519: old {0, 1, 2} (t = 1) -> new {1, 2, 3, 4} (t = 2); party 0 is removed."""
    old = keygen("ed25519", 3, 1)
    plan = make_plan("ed25519", old[0], 1, [1, 2, None, None, None], 2, [None, 1, 2, 3, 4])
    outcome = run_reshare(plan, {0: old[0]["share"], 1: old[1]["share"]})
    new_shares = check_outcome("ed25519", outcome, plan)
    assert_old_share_useless("ed25519", old[0]["share"], 1, new_shares, 2, plan["public_key"])
    frost_sign_with_new_committee(new_shares, 2, plan["public_key"])


# -- cheating dealers ------------------------------------------------------------------------

class WrongSubShare(Dealing):
    """Sends the new party at point 2 a wrong sub-share and opens that same wrong value."""

    def sub_share(self, x: int) -> int:
        return (super().sub_share(x) + (x == 2)) % self.curve.order

    def opening(self, x: int) -> int:
        return self.sub_share(x)


class WrongSubShareOpenedRight(WrongSubShare):
    """Sends a wrong sub-share, but opens the right one when accused."""

    def opening(self, x: int) -> int:
        return Dealing.sub_share(self, x)


class OtherSecret(Dealing):
    """Deals a secret other than λ_i·s_i, consistently with its commitments."""

    @classmethod
    def fresh(cls, plan, dealer, share):
        return super().fresh(plan, dealer, share + 1)


CHEATS = {"wrong sub-share": WrongSubShare, "resolved": WrongSubShareOpenedRight,
          "other secret": OtherSecret}


async def dealer_cheats(rt, plan: dict, share, how: str | None):
    """One session party of a test: deals as CHEATS[how], or honestly for how None."""
    return await reshare(rt, plan, share, CHEATS[how] if how else Dealing)


@pytest.mark.heavy
@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["wrong sub-share", "other secret"])
def test_a_cheating_dealer_is_named_by_every_party(how):
    old = keygen("secp256k1", 3, 1)
    plan = make_plan("secp256k1", old[0], 1, [1, 2, 3, None], 1, [1, 2, 3, 4])
    with pytest.raises(RuntimeError) as failed:
        run_reshare(plan, {i: old[i]["share"] for i in range(3)},
                    target="tests.test_reshare_protocol:dealer_cheats",
                    extra={pid: [how if pid == 2 else None] for pid in range(4)})
    report = str(failed.value)
    for pid in range(4):  # every party, the cheater included, aborts and names dealer 2
        assert f"party {pid} exited" in report
    assert report.count("ReshareError: resharing aborted") == 4
    expected = {"wrong sub-share": "dealer 2 sent new parties [1] sub-shares that do not match",
                "other secret": "dealers [2] sent commitments that are malformed or do not deal"}
    assert report.count(expected[how]) == 4


@pytest.mark.heavy
@pytest.mark.timeout(180)
def test_a_complaint_answered_by_a_valid_opening_is_resolved():
    old = keygen("secp256k1", 3, 1)
    plan = make_plan("secp256k1", old[0], 1, [1, 2, 3, None], 1, [1, 2, 3, 4])
    outcome = run_reshare(plan, {i: old[i]["share"] for i in range(3)},
                          target="tests.test_reshare_protocol:dealer_cheats",
                          extra={pid: ["resolved" if pid == 0 else None] for pid in range(4)})
    check_outcome("secp256k1", outcome, plan)


# -- the plan --------------------------------------------------------------------------------

def plan_of_three():
    """A public 2-of-3 secp256k1 sharing of the secret 7 (f(x) = 7 + 5x), not from MPC."""
    vshares = [coincurve.PrivateKey.from_int(7 + 5 * x).public_key.format().hex()
               for x in (1, 2, 3)]
    key = {"public_key": coincurve.PrivateKey.from_int(7).public_key.format().hex(),
           "verification_shares": vshares}
    return make_plan("secp256k1", key, 1, [1, 2, None], 1, [1, 2, 3])


@pytest.mark.parametrize("change, problem", [
    ({"curve": "p256"}, "unknown curve"),
    ({"old_points": [1, 2]}, "one entry per session party"),
    ({"old_points": [1, 1, None]}, "distinct"),
    ({"old_points": [1, 4, None]}, "in 1..3"),
    ({"old_points": [1, None, None]}, "cannot reconstruct"),
    ({"new_points": [1, 3, None], "old_points": [1, 2, 3]}, "new points must be 1..2"),
    ({"new_threshold": 3}, "needs more than 3 new parties"),
    ({"new_threshold": -1}, "non-negative int"),
    ({"old_points": [1, 2, None], "new_points": [1, 2, None]}, "neither deals nor receives"),
    ({"public_key": coincurve.PrivateKey.from_int(8).public_key.format().hex()},
     "no degree-1 polynomial through the public key"),
])
def test_a_bad_plan_is_refused_with_its_problem_named(change, problem):
    with pytest.raises(ValueError, match=problem):
        ResharePlan.parse({**plan_of_three(), **change}, parties=3)


def test_a_plan_lacking_a_field_names_it():
    plan = plan_of_three()
    del plan["new_threshold"]
    with pytest.raises(ValueError, match="lacks \\['new_threshold'\\]"):
        ResharePlan.parse(plan, parties=3)


def test_dealings_commit_to_lagrange_weighted_shares():
    """Dealers 1 and 2 of f(x) = 7 + 5x: their dealt secrets add up to 7, and each
    commitment list evaluates in the exponent to the sub-shares."""
    plan = ResharePlan.parse(plan_of_three(), parties=3)
    dealings = {pid: Dealing.fresh(plan, pid, 7 + 5 * (pid + 1)) for pid in (0, 1)}
    assert sum(d.coefficients[0] for d in dealings.values()) % N == 7
    for pid, d in dealings.items():
        assert d.commitments()[0] == plan.dealt_secret_point(pid)
        for x in (1, 2, 3):
            assert in_exponent(plan.curve, d.commitments(), x) == \
                coincurve.PrivateKey.from_int(d.sub_share(x)).public_key.format()
        assert str(d.coefficients[0]) not in repr(d)  # secret coefficients stay out of logs

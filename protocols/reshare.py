"""Resharing a threshold key to a new committee, keeping its public key (Feldman VSS).

Run in one MPyC session over the union of the old and the new committee; MPyC's own
sharing is not used, only three rounds of JSON messages, one from every party to every
other (``mpyc_seam.exchange``; never a pickle, which MPyC's ``transfer`` would load from a
peer).  Every party passes the same public plan (:class:`ResharePlan`) and, if it deals,
its old share:

1. **deal** — each dealer i (old holders of a qualified set S, at old points x_i) picks a
   random polynomial f_i of degree t_new with f_i(0) = λ_i·s_i (λ_i: Lagrange at 0 over S),
   sends every party its Feldman commitments C_ik = a_ik·G and every new party j, alone,
   its sub-share f_i(j).  Σ_i f_i(0) = Σ λ_i·s_i is the old secret.
2. **check and complain** — everyone checks C_i0 = λ_i·Y_i against the dealer's old
   verification share Y_i = s_i·G (a dealer that deals another secret is named); each new
   party j checks f_i(j)·G = Σ_k j^k·C_ik.  Every party sends everyone the dealers that
   failed that check and a digest of the commitments it received from each dealer: a
   digest other than one's own means a dealer sent different commitments to different
   parties (or the sender misreports), and the resharing aborts without a name.
3. **answer** — each accused dealer opens the disputed sub-shares to everyone.  A valid
   opening resolves the complaint (the accuser takes that value); a wrong one names the
   dealer, and so does a missing answer to this party's own complaint.  A missing answer
   to another party's complaint aborts without a name: complaints go point to point, so
   the accuser may not have sent it to the dealer.
4. **derive** — new party j's share is s'_j = Σ_i f_i(j).  The new verification shares
   V_j = Σ_k j^k·(Σ_i C_ik) come from the commitments alone; everyone checks that they lie
   on one degree-t_new polynomial whose value at 0 is the OLD public key, and each new
   party that V_j = s'_j·G.

Every party runs the three rounds before it judges; any problem aborts.  Against up to
t_new corrupted new parties and t_old corrupted old holders this is secure with abort:
the argument is in docs/SECURITY.md ("Key resharing").  Nothing is deleted here: the
caller stages the new share and commits it only once every party staged the same public
key and verification shares (docs/KEYSHARE.md).  Parties only in the old committee deal
and get a confirmation (the new public sharing, no share); parties only in the new one
receive.  Curves: secp256k1 (ECDSA keys) and Ed25519 (FROST).

Run its tests with ``pytest tests/test_reshare_protocol.py``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import coincurve
from nacl import bindings as sodium

from protocols import frost, secp256k1
from protocols.mpyc_seam import exchange
from protocols.shamir import lagrange_coefficients


class ReshareError(RuntimeError):
    """Resharing failed; nothing changed.  ``cheaters`` are the session indices of the
    parties proven to cheat (dealers, or parties that sent a malformed complaint message)."""

    def __init__(self, message: str, cheaters: Sequence[int] = ()):
        self.cheaters = sorted(cheaters)
        super().__init__(message)


# -- the two groups --------------------------------------------------------------------------

class Secp256k1:
    """secp256k1 points as 33-byte compressed encodings (libsecp256k1 via coincurve)."""

    name = "secp256k1"
    order = secp256k1.N

    @staticmethod
    def base(k: int) -> bytes:
        return secp256k1.mul_base(k).format(compressed=True)

    @staticmethod
    def decode(data) -> bytes:
        """A canonical compressed point, or ValueError."""
        if not isinstance(data, bytes) or len(data) != 33:
            raise ValueError("not a 33-byte compressed secp256k1 point")
        if secp256k1.point(data).format(compressed=True) != data:
            raise ValueError("not a canonical secp256k1 point")
        return data

    @staticmethod
    def combination(terms: Sequence[tuple[int, bytes]]) -> bytes | None:
        """Σ k·P over (k, P) of valid points; None for the identity."""
        parts = [secp256k1.mul(secp256k1.point(p), k) for k, p in terms if k % secp256k1.N]
        if not parts:
            return None
        try:
            return coincurve.PublicKey.combine_keys(parts).format(compressed=True)
        except ValueError:  # the inputs are valid points: their sum is the point at infinity
            return None

    @staticmethod
    def check_sharing(verification_shares: list[bytes], degree: int, public_key: bytes) -> None:
        secp256k1.check_verification_shares([v.hex() for v in verification_shares], degree,
                                            public_key.hex())


class Ed25519:
    """Ed25519 points as 32-byte encodings in the prime-order subgroup (libsodium)."""

    name = "ed25519"
    order = frost.L
    _IDENTITY = b"\x01" + bytes(31)

    @staticmethod
    def base(k: int) -> bytes:
        return frost.verification_share((k % frost.L).to_bytes(32, "little"))

    @staticmethod
    def decode(data) -> bytes:
        return frost.decode_element(data, "Ed25519 point")

    @classmethod
    def combination(cls, terms: Sequence[tuple[int, bytes]]) -> bytes | None:
        acc = cls._IDENTITY
        for k, p in terms:
            if k % frost.L:
                scalar = (k % frost.L).to_bytes(32, "little")
                acc = sodium.crypto_core_ed25519_add(
                    acc, sodium.crypto_scalarmult_ed25519_noclamp(scalar, p))
        return None if acc == cls._IDENTITY else acc

    @staticmethod
    def check_sharing(verification_shares: list[bytes], degree: int, public_key: bytes) -> None:
        shares = {j + 1: v for j, v in enumerate(verification_shares)}
        if frost.group_public_key(shares, degree=degree) != public_key:
            raise frost.FrostError("the verification shares do not interpolate to the public key")


CURVES = {c.name: c for c in (Secp256k1, Ed25519)}


def in_exponent(curve, commitments: Sequence[bytes], x: int) -> bytes | None:
    """Σ_k x^k·C_k: the committed polynomial at x, times G (None for the identity)."""
    return curve.combination([(pow(x, k, curve.order), c) for k, c in enumerate(commitments)])


# -- the plan --------------------------------------------------------------------------------

PLAN_FIELDS = {"curve", "public_key", "old_threshold", "old_verification_shares", "old_points",
               "new_threshold", "new_points"}


@dataclass(frozen=True)
class ResharePlan:
    """What every session party agrees on, by session index: who deals from which old
    point, who receives at which new point (1..n_new), both thresholds, and the old public
    sharing (public key, old verification shares at old points 1..n_old)."""

    curve: type
    public_key: bytes
    old_threshold: int
    old_verification_shares: tuple[bytes, ...]
    dealers: dict[int, int]  # session index -> old point
    new_threshold: int
    receivers: dict[int, int]  # session index -> new point

    @classmethod
    def parse(cls, raw: dict, parties: int) -> ResharePlan:
        """The plan from its JSON form (the ``PLAN_FIELDS``; old_points and new_points give
        each session party's point or null); ValueError names what is wrong."""
        missing = PLAN_FIELDS - raw.keys()
        if missing:
            raise ValueError(f"the resharing plan lacks {sorted(missing)}")
        curve = CURVES.get(raw["curve"])
        if curve is None:
            raise ValueError(f"unknown curve {raw.get('curve')!r}; one of {sorted(CURVES)}")
        old_points, new_points = raw["old_points"], raw["new_points"]
        if len(old_points) != parties or len(new_points) != parties:
            raise ValueError(f"old_points and new_points need one entry per session party"
                             f" ({parties})")
        for pid, (old, new) in enumerate(zip(old_points, new_points)):
            if old is None and new is None:
                raise ValueError(f"session party {pid} neither deals nor receives")
        dealers = {pid: x for pid, x in enumerate(old_points) if x is not None}
        receivers = {pid: x for pid, x in enumerate(new_points) if x is not None}
        old_vshares = tuple(curve.decode(bytes.fromhex(v))
                            for v in raw["old_verification_shares"])
        old_t, new_t = _threshold(raw["old_threshold"]), _threshold(raw["new_threshold"])
        if len(set(dealers.values())) != len(dealers) or not set(dealers.values()) <= set(
                range(1, len(old_vshares) + 1)):
            raise ValueError(f"dealers' old points must be distinct, in 1..{len(old_vshares)}:"
                             f" {old_points}")
        if len(dealers) < old_t + 1:
            raise ValueError(f"{len(dealers)} dealers cannot reconstruct a key of old"
                             f" threshold {old_t} (need {old_t + 1})")
        if sorted(receivers.values()) != list(range(1, len(receivers) + 1)):
            raise ValueError(f"new points must be 1..{len(receivers)}, once each: {new_points}")
        if new_t >= len(receivers):
            raise ValueError(f"new threshold {new_t} needs more than {len(receivers)} new"
                             f" parties")
        public_key = curve.decode(bytes.fromhex(raw["public_key"]))
        curve.check_sharing(list(old_vshares), old_t, public_key)
        return cls(curve, public_key, old_t, old_vshares, dealers, new_t, receivers)

    def weight(self, dealer: int) -> int:
        """λ_i: the dealer's Lagrange coefficient at 0 over the dealers' old points."""
        points = list(self.dealers.values())
        return lagrange_coefficients(points, 0, self.curve.order)[
            list(self.dealers).index(dealer)]

    def dealt_secret_point(self, dealer: int) -> bytes | None:
        """λ_i·Y_i: what the dealer's commitment C_i0 must be."""
        vshare = self.old_verification_shares[self.dealers[dealer] - 1]
        return self.curve.combination([(self.weight(dealer), vshare)])


def _threshold(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a threshold must be a non-negative int, got {value!r}")
    return value


# -- one dealer's part -----------------------------------------------------------------------

@dataclass(frozen=True)
class Dealing:
    """One dealer's random polynomial of degree t_new with constant term λ_i·s_i (secret)."""

    curve: type
    coefficients: tuple[int, ...]

    @classmethod
    def fresh(cls, plan: ResharePlan, dealer: int, share: int) -> Dealing:
        q = plan.curve.order
        constant = plan.weight(dealer) * share % q
        return cls(plan.curve, (constant, *(1 + secrets.randbelow(q - 1)
                                            for _ in range(plan.new_threshold))))

    def __repr__(self) -> str:  # the coefficients are secret
        return f"Dealing({self.curve.name}, degree {len(self.coefficients) - 1})"

    @functools.cached_property
    def _commitments(self) -> list[bytes]:
        return [self.curve.base(a) for a in self.coefficients]

    def commitments(self, to: int | None = None) -> list[bytes]:
        """The Feldman commitments a_k·G, as sent to session party ``to``: the same to every
        party (a test's dealer equivocates here)."""
        return self._commitments

    def sub_share(self, x: int) -> int:
        """f_i(x), sent to the new party at point x."""
        return sum(a * pow(x, k, self.curve.order)
                   for k, a in enumerate(self.coefficients)) % self.curve.order

    def opening(self, x: int) -> int:
        """The sub-share of point x, opened to everyone when its receiver complains."""
        return self.sub_share(x)


def _check_share(plan: ResharePlan, pid: int, share) -> None:
    """A dealer's share is a scalar that matches its old verification share."""
    if pid not in plan.dealers:
        if share is not None:
            raise ValueError(f"session party {pid} is not a dealer but was given a share")
        return
    if isinstance(share, bool) or not isinstance(share, int) or not 0 < share < plan.curve.order:
        raise ValueError(f"dealer {pid} needs its old share, a scalar in 1..order-1")
    if plan.curve.base(share) != plan.old_verification_shares[plan.dealers[pid] - 1]:
        raise ValueError(f"dealer {pid}'s share does not match its old verification share"
                         f" (point {plan.dealers[pid]})")


# -- checks on what arrived ------------------------------------------------------------------

def _valid_commitments(plan: ResharePlan, dealer: int, commitments) -> list[bytes] | None:
    """The dealer's commitments (as sent: hex points) if well formed and dealing λ_i·s_i,
    else None."""
    if not isinstance(commitments, list) or len(commitments) != plan.new_threshold + 1:
        return None
    try:
        decoded = [plan.curve.decode(bytes.fromhex(c)) for c in commitments]
    except (ValueError, TypeError):
        return None
    return decoded if decoded[0] == plan.dealt_secret_point(dealer) else None


def _sub_share_ok(plan: ResharePlan, commitments: list[bytes], x: int, value) -> bool:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < plan.curve.order:
        return False  # 0 would be f_i(x) = 0: probability 1/order for an honest dealer
    return plan.curve.base(value) == in_exponent(plan.curve, commitments, x)


# -- the wire ------------------------------------------------------------------------------
# Every message is JSON (points in hex, scalars as integers), parsed here and checked by the
# functions above: never a pickle (MPyC's ``transfer`` unpickles what a peer sent).

def _encode(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


MALFORMED = object()


def _decode(data: bytes | None):
    """A peer's JSON message, or ``MALFORMED``."""
    if not data:
        return MALFORMED
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # also UnicodeDecodeError, too many digits
        return MALFORMED


def _seen(raw_commitments) -> str:
    """A digest of the commitments as received, echoed to every party."""
    return hashlib.sha256(_encode(raw_commitments if raw_commitments is not MALFORMED
                                  else None)).hexdigest()


# -- the protocol ----------------------------------------------------------------------------

async def reshare(rt, plan: dict, share: int | None, dealing=Dealing) -> dict:
    """Among the union of old and new parties, all with the same ``plan`` (see
    :meth:`ResharePlan.parse`): dealers pass their old share, others None.

    Returns ``{"share", "public_key", "threshold", "verification_shares"}`` (hex points,
    index j-1 for new point j); ``share`` is this party's new share, or None for a party only
    in the old committee.  Raises ReshareError naming cheaters.  ``dealing`` makes this
    party's polynomial (tests pass a cheating one).

    Three rounds, each one message from every party to every other (``exchange``): deal
    (commitments, and the receiver's sub-share), complain (each party's complaints and a
    digest of the commitments it received from each dealer), open.  Every party runs all
    three before it judges, so that no honest party waits for one that stopped early."""
    plan = ResharePlan.parse(plan, len(rt.parties))
    _check_share(plan, rt.pid, share)
    me, m = rt.pid, len(rt.parties)
    dealers = list(plan.dealers)
    mine = dealing.fresh(plan, me, share) if me in plan.dealers else None

    def dealt_to(j: int) -> dict | None:
        if mine is None:
            return None
        x = plan.receivers.get(j)
        return {"commitments": [c.hex() for c in mine.commitments(to=j)],
                "sub_share": None if x is None else mine.sub_share(x)}

    got = await exchange(rt, [b"" if j == me or mine is None else _encode(dealt_to(j))
                              for j in range(m)])
    dealt = {d: dealt_to(me) if d == me else _decode(got[d]) for d in dealers}
    raw = {d: msg.get("commitments") if isinstance(msg, dict) else MALFORMED
           for d, msg in dealt.items()}
    valid = {d: _valid_commitments(plan, d, c) for d, c in raw.items()}
    bad_dealers = {d for d, c in valid.items() if c is None}
    x_me = plan.receivers.get(me)
    my_sub_shares, my_complaints = {}, []
    if x_me is not None:
        my_sub_shares = {d: msg.get("sub_share") if isinstance(msg, dict) else None
                         for d, msg in dealt.items()}
        my_complaints = [d for d, v in my_sub_shares.items()
                         if d not in bad_dealers and not _sub_share_ok(plan, valid[d], x_me, v)]

    mine_2 = {"complaints": my_complaints if x_me is not None else None,
              "seen": [_seen(raw[d]) for d in dealers]}
    got = await exchange(rt, [b"" if j == me else _encode(mine_2) for j in range(m)])
    round_2 = {j: mine_2 if j == me else _decode(got[j]) for j in range(m)}
    accusers, malformed = _accusers(plan, round_2)
    equivocated = {d: [j for j in range(m) if j not in malformed
                       and round_2[j]["seen"][i] != mine_2["seen"][i]]
                   for i, d in enumerate(dealers)}

    my_openings = None
    if mine:
        my_openings = {str(r): mine.opening(plan.receivers[r]) for r in accusers.get(me, [])}
    got = await exchange(rt, [b"" if j == me or mine is None else _encode(my_openings)
                              for j in range(m)])
    openings = {d: my_openings if d == me else _decode(got[d]) for d in dealers}

    proven, unresolved = _disputes(plan, me, valid, bad_dealers, accusers, openings)
    _raise_if_cheated(bad_dealers, proven, unresolved, malformed,
                      {d: js for d, js in equivocated.items() if js})
    for d in my_complaints:  # each was resolved in the open: take the opened sub-share
        my_sub_shares[d] = openings[d][str(me)]
    return _derive(plan, valid, x_me, my_sub_shares)


def _accusers(plan: ResharePlan, round_2: dict[int, object]
              ) -> tuple[dict[int, list[int]], set[int]]:
    """Each dealer's accusers, and the parties whose complaint message is malformed: not
    ``{"complaints": [dealers] (None from a party that receives nothing), "seen": [one digest
    per dealer]}``."""
    accusers = {d: [] for d in plan.dealers}
    malformed = set()
    for j, msg in round_2.items():
        accused = msg.get("complaints", MALFORMED) if isinstance(msg, dict) else MALFORMED
        seen = msg.get("seen") if isinstance(msg, dict) else None
        if j in plan.receivers:
            ok = isinstance(accused, list) and all(type(d) is int and d in plan.dealers
                                                   for d in accused)
        else:
            ok = accused is None
        if not (ok and isinstance(seen, list) and len(seen) == len(plan.dealers)
                and all(isinstance(s, str) for s in seen)):
            malformed.add(j)
            continue
        for d in sorted(set(accused or ())):
            accusers[d].append(j)
    return accusers, malformed


def _disputes(plan: ResharePlan, me: int, commitments: dict[int, list[bytes] | None],
              bad_dealers: set[int], accusers: dict[int, list[int]],
              openings: dict[int, object]) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """The complaints a dealer did not resolve by opening a valid sub-share to this party.
    ``proven``: it opened a wrong value, sent no valid openings message, or ignored this
    party's own complaint -- the dealer deviated.  ``unresolved``: it opened nothing for
    another party's complaint, which this party cannot judge (the dealer ignored the
    complaint, or the accuser did not send it to the dealer: complaints go point to point)."""
    proven, unresolved = {}, {}
    for d, rs in accusers.items():
        if d in bad_dealers or not rs:
            continue
        opened = openings[d]
        if not (isinstance(opened, dict) and all(isinstance(k, str) for k in opened)):
            proven[d] = rs
            continue
        for r in rs:
            if str(r) not in opened and r != me:
                unresolved.setdefault(d, []).append(r)
            elif not _sub_share_ok(plan, commitments[d], plan.receivers[r], opened.get(str(r))):
                proven.setdefault(d, []).append(r)
    return proven, unresolved


def _raise_if_cheated(bad_dealers: set[int], proven: dict[int, list[int]],
                      unresolved: dict[int, list[int]], malformed: set[int],
                      equivocated: dict[int, list[int]]) -> None:
    reasons = []
    if bad_dealers:
        reasons.append(f"dealers {sorted(bad_dealers)} sent commitments that are malformed"
                       f" or do not deal their old share")
    for d, rs in sorted(proven.items()):
        reasons.append(f"dealer {d} sent new parties {rs} sub-shares that do not match its"
                       f" commitments, and opened none that do")
    for d, rs in sorted(unresolved.items()):
        reasons.append(f"dealer {d} opened no sub-share for the complaints of parties {rs}"
                       f" (it ignored them, or they did not send them to it)")
    if malformed:
        reasons.append(f"parties {sorted(malformed)} sent malformed complaint messages")
    for d, js in sorted(equivocated.items()):
        reasons.append(f"parties {js} received other commitments from dealer {d} than this"
                       f" party did (the dealer sent different ones, or they misreport them)")
    if reasons:
        raise ReshareError("resharing aborted, nothing changed: " + "; ".join(reasons),
                           cheaters=bad_dealers | set(proven) | malformed)


def _derive(plan: ResharePlan, commitments: dict[int, list[bytes]], x_me: int | None,
            sub_shares: dict[int, int]) -> dict:
    """The new public sharing from the commitments, checked against the old public key,
    and this party's new share."""
    curve = plan.curve
    summed = [curve.combination([(1, c[k]) for c in commitments.values()])
              for k in range(plan.new_threshold + 1)]
    if summed[0] != plan.public_key:
        raise ReshareError("the dealt secrets do not add up to the old public key")
    if None in summed:
        raise ReshareError("a summed commitment is the identity; run the resharing again")
    vshares = [in_exponent(curve, summed, x) for x in range(1, len(plan.receivers) + 1)]
    if None in vshares:
        raise ReshareError("a new share is zero; run the resharing again")
    curve.check_sharing(vshares, plan.new_threshold, plan.public_key)
    new_share = None
    if x_me is not None:
        new_share = sum(sub_shares.values()) % curve.order
        if new_share == 0 or curve.base(new_share) != vshares[x_me - 1]:
            raise ReshareError(f"the new share of point {x_me} does not match its"
                               f" verification share")
    return {"share": new_share, "public_key": plan.public_key.hex(),
            "threshold": plan.new_threshold, "verification_shares": [v.hex() for v in vshares]}

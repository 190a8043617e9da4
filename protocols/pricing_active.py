"""Joint pricing under ``security: malicious`` (issue 13): the exact-selection path (the
median of an odd number of parties, or the trimmed mean of three) with its circuit breaker,
secure with abort against t actively malicious parties, on ``protocols.active.Checked`` over
GF(2^31 − 1) (numpy int64; the batch check's coins in GF(p²), below 2^-55).

Per option each party deals the VOL_W bits of its volatility round(σ·2^24) and its own
price and Greeks at that volatility (as in ``protocols.pricing``'s exact path) offset by
2^47, each as two 24-bit limbs.  In the session:

1. ranks from the pairwise comparisons of the vol bits (``bitwise.less_than``), and the
   one-hot indicators of the lowest, median and highest rank (Lagrange polynomials);
2. the bits of σ_min, σ_med and σ_max (selected with the indicators, each selection one
   inner product: still bits);
3. the breaker, exactly: an option breaches when 2^12·(σ_max − σ_min) > L·σ_med, with
   L = round(limit·2^12) public: ``bitwise.greater_than_sum`` of 2^12·σ_max against
   2^12·σ_min and one shifted copy of σ_med per set bit of L (carry-save adders and one
   carry, no sum formed);
4. the median party's limbs, selected with its indicator.

Then the batch check of every product, the check that every dealt vol bit is a bit (naming a
dealer that dealt a non-bit), and only then the breaker bits and the selected limbs of the
options that pass are opened (checked openings).  Limbs outside 24 bits can only come from
the selected party, which dealt them: the job stops saying so.  Nothing else is opened, so
an additive error never reaches an output.

With reveal "coordinator" the parties return their shares of the selected limbs instead of
opening them; the coordinator checks that all shares lie on one polynomial, recombines the
limbs and checks their range (``mpc_nodes.jobs.output_shares``).  Portfolio totals (sums of
quantities times outputs, up to 2^105) run the same circuit in GF(2^127 − 1) (Python
integers: slower), with the outputs dealt whole, and open (or share) only the totals with
PRSS noise below their precision, as under semi-honest.

The secure evaluation (mean, trimmed mean of more than three, median of an even count) is
``pricing_secure_active``'s; ``price`` hands it over.  The breaker decides exactly at the
limit (the semi-honest path keeps a slack of a few 2^-20 of a vol point on the conservative
side).
"""

from __future__ import annotations

import numpy as np

from math import comb

from . import bitwise, bsm, pricing_secure_active
from .active import Checked, Deviation
from .mpyc_seam import agree_prss_keys, prss_share
from .pricing import (_VOL_TOP, F, LIMIT_BITS, NOISE_BITS, QTY_BITS, SELECT_TYPE_BITS,
                      VOL_BITS, PricingError, _check_public, _fixed, plan)

Q = 2 ** 31 - 1
WIDE = 2 ** 127 - 1                # portfolio totals: quantities times outputs, summed
VOL_W = _VOL_TOP.bit_length()      # bits of a volatility round(σ·2^24) <= round(5·2^24)
LIMB = 24                          # bits of a limb of an output
OFFSET = 1 << (SELECT_TYPE_BITS - 1)
B_WIDTH = VOL_W + LIMIT_BITS + 1   # 2^12·σ_min + L·σ_med < 2^(VOL_W + 13)
CHUNK = 1000  # options per checked session: it keeps every product of a chunk for its check


async def price(rt, vols: list[float], public: dict, names: list[str] | None = None) -> dict:
    """As ``protocols.pricing.price``: {"breached": [option indices], "rows": revealed integer
    rows, "scale_bits": F}, or with reveal "coordinator" this party's Shamir shares of the
    rows' limbs instead ("share": ``limb_shares``).  The secure evaluation (the mean and
    the like) is ``pricing_secure_active``'s."""
    _check_public(vols, public)
    if plan(len(rt.parties), public["method"])[0] != "exact":
        return await pricing_secure_active.price(rt, vols, public, names)
    vols = np.asarray(vols, dtype=float)
    limit = int(round(public["limit"] * 2 ** LIMIT_BITS))
    totals, reveal = public["portfolio"], public["reveal"] == "all"
    points = list(range(1, len(rt.parties) + 1))
    breached, rows, ok = [], [], []
    for start in range(0, len(vols), CHUNK):
        idx = np.arange(start, min(len(vols), start + CHUNK))
        s = Checked(rt, WIDE if totals else Q, points, names)
        chunk_breached, chunk_rows = await _chunk(s, vols[idx], public, idx, limit,
                                                  reveal and not totals)
        breached += [int(idx[i]) for i in chunk_breached]
        ok += [int(i) for i in np.delete(idx, chunk_breached)]
        rows.append(chunk_rows)
    result = {"breached": breached, "scale_bits": F}
    if totals:
        if breached:  # as under semi-honest: a portfolio with a breached option reveals nothing
            return result | {"rows": None}
        await agree_prss_keys(rt, names)  # the noise is bounded only if the keys agree
        return result | await _totals(Checked(rt, WIDE, points, names),
                                      np.concatenate(rows, axis=-1)[0], public, ok, reveal)
    if not ok:  # every option breached: nothing to reveal, as under semi-honest
        return result | {"rows": []}
    if reveal:
        return result | {"rows": np.concatenate(rows, axis=1).tolist()}
    return result | {"rows": None, "share": limb_shares(rt, np.concatenate(rows, axis=-1))}


async def _totals(s: Checked, rows, public: dict, ok: list[int], reveal: bool) -> dict:
    """Quantity-weighted totals of the selected rows (shares of value + OFFSET, in WIDE), with
    PRSS noise below their reported precision as under semi-honest: opened, or this party's
    shares for the coordinator."""
    q = _fixed(np.asarray(public["quantities"], dtype=float)[ok], QTY_BITS)
    totals = ((rows - OFFSET) % WIDE) @ (q % WIDE) % WIDE
    bits = F + QTY_BITS
    noise = prss_share(s.rt, s.rt.SecFld(WIDE).field, 1 << (bits - NOISE_BITS), len(totals))
    centre = comb(s.m, s.t) * (1 << (bits - NOISE_BITS - 1))
    totals = (totals + noise.value - centre) % WIDE
    if not reveal:
        return {"rows": None, "scale_bits": bits,
                "share": {"point": s.me + 1, "modulus": WIDE, "degree": s.t,
                          "shape": [len(totals)], "values": [int(v) for v in totals]}}
    opened = await s.open(totals)
    return {"rows": [int(v) - WIDE if v > WIDE // 2 else int(v) for v in opened],
            "scale_bits": bits}


def limb_shares(rt, limbs) -> dict:
    """This party's share record of the selected rows' limbs (2, rows, options), for the
    coordinator (mpc_nodes.jobs.output_shares): the low limbs, then the high ones."""
    return {"point": rt.pid + 1, "modulus": Q, "degree": rt.threshold,
            "shape": list(limbs.shape[1:]), "limb_bits": LIMB, "offset": OFFSET,
            "values": [int(v) for v in np.ravel(limbs)]}


def _own_rows(vols, public: dict, idx) -> np.ndarray:
    """This party's price (and Greeks) at its own vols, normalised, scaled by 2^F."""
    mine = bsm.bsm(np.asarray(public["is_call"])[idx], public["spot"],
                   np.asarray(public["strikes"])[idx], np.asarray(public["expiries"])[idx],
                   public["rate"], public["dividend"], vols)
    own = _fixed(bsm.normalise(mine, public["spot"], public["greeks"]))
    if np.max(np.abs(own)) >= OFFSET:  # not in the domain
        raise PricingError(f"an output exceeds {SELECT_TYPE_BITS} bits")
    return own.reshape(-1, len(vols))


async def _chunk(s: Checked, vols, public: dict, idx, limit: int, reveal: bool):
    """(indices into the chunk that breach, revealed rows of the others, or with ``reveal``
    False this party's shares of their limbs: two of 24 bits in Q, one whole value in WIDE;
    none for a portfolio chunk with a breach)."""
    n, m, p = s.m, len(vols), s.p
    sigma = _fixed(vols, VOL_BITS).astype(np.int64)
    if np.any(sigma > _VOL_TOP) or np.any(sigma < 0):
        raise PricingError("a volatility is outside the domain")
    own = (_own_rows(vols, public, idx) + OFFSET).astype(object)
    r = own.shape[0]
    bits = (sigma[:, None] >> np.arange(VOL_W)) & 1                        # (m, VOL_W)
    limbs = np.stack([own & ((1 << LIMB) - 1), own >> LIMB]) if p == Q else own[None]
    k = len(limbs)                                                          # (k, r, m)
    s.prepare_check()
    dealt = await s.deal(np.concatenate([bits.ravel(), limbs.ravel()]))
    bits = dealt[:, :m * VOL_W].reshape(n, m, VOL_W)
    limbs = dealt[:, m * VOL_W:].reshape(n, k, r, m)
    not_bits = s.mul(bits, (1 - bits) % p)

    # 1. ranks and the indicators of the lowest, median and highest rank
    ranks = await bitwise.ranks(s, bits)
    low, med, high = await bitwise.rank_indicators(s, ranks, [0, n // 2, n - 1])

    # 2. the bits of σ_min, σ_med, σ_max
    which = np.stack([low, med, high], axis=1)                              # (n, 3, m)
    chosen = await s.inner(which[..., None], bits[:, None])                 # (3, m, W)
    s_min, s_med, s_max = chosen

    # 3. the breaker: [2^12·σ_max > 2^12·σ_min + L·σ_med]
    terms = [bitwise.shift(s_med, j) for j in range(limit.bit_length()) if limit >> j & 1]
    breach = await bitwise.greater_than_sum(s, bitwise.shift(s_max, LIMIT_BITS),
                                            terms + [bitwise.shift(s_min, LIMIT_BITS)], B_WIDTH)

    # 4. the median party's limbs
    picked = await s.inner(med[:, None, None, :], limbs)                    # (k, r, m)

    not_bits = await not_bits  # before the check, so that the check covers these products
    await s.verify()
    await bitwise.check_bits(s, not_bits)
    breach = (await s.open(breach)).astype(bool)
    ok = np.flatnonzero(~breach)
    if public["portfolio"] and len(ok) < m:
        return np.flatnonzero(breach), None
    if not reveal:
        return np.flatnonzero(breach), picked[:, :, ok]
    opened = (await s.open(picked[:, :, ok].ravel())).reshape(2, r, len(ok)) if len(ok) else \
        np.zeros((2, r, 0), dtype=np.int64)
    if np.any(opened >= 1 << LIMB):
        raise Deviation("the median party's dealt output is outside its range: it dealt"
                        " limbs wider than 24 bits")
    values = (opened[1].astype(object) << LIMB) + opened[0].astype(object) - OFFSET
    return np.flatnonzero(breach), values

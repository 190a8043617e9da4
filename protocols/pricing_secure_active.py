"""Joint pricing's secure evaluation (the mean, the trimmed mean of more than three, the
median of an even count) under ``security: malicious``: secure with abort against t actively
malicious parties (issue 13), on a checked session over the 140-bit field of MPyC's
``SecInt(108)`` with ``fixed_active.CheckedOps``.

Per option each party deals the SIGMA_W bits of its volatility round(σ·2^32): the aggregate
is made of exactly the values that are ranked (the ranking uses their top bits, σ at 2^-24),
and every input is in range once its bits are bits.  In the session:

1. the check that dealt bits are bits (one inner product per dealer; it names a dealer
   that dealt a non-bit), so that every vol is in range before a comparison opens it;
   ranks from the pairwise comparisons of the numbers the top bits make
   (``CheckedOps.lt_zero`` of their differences), and the one-hot indicators of the lowest
   and highest rank and of the ranks kept;
2. the kept sum Σ σ_i over the kept ranks (products with the indicators; for the mean the
   plain sum) and the spread σ_max − σ_min;
3. the breaker, exactly: an option breaches when
   2^12·divisor·(σ_max − σ_min) > L·Σ kept σ_i, L = round(limit·2^12);
4. for the options that pass, ``pricing.secure_bsm`` on the kept sum with Newton's iteration
   started at the public 1/(VOL_MAX·√T), from below (no private reciprocal to bind: the
   semi-honest path takes each party's 1/σ, which a deviator could set to stop Newton
   converging), every opening after the batch check (``fixed_active``);
5. the rows opened (checked), or this party's shares of them for the coordinator, or the
   quantity-weighted totals with PRSS noise below their precision, as under semi-honest.
"""

from __future__ import annotations

from math import comb

import numpy as np

from . import bitwise
from .active import M31, Checked, Deviation
from .fixed_active import CheckedOps
from .mpyc_seam import agree_prss_keys, prss_share
from .pricing import (F, LIMIT_BITS, NOISE_BITS, QTY_BITS, SECURE_TYPE_BITS, VOL_BITS,
                      PricingError, _check_public, _fixed, by_chunks, nothing_to_reveal, plan,
                      secure_bsm)
from . import domain

SIGMA_TOP = round(domain.VOL_MAX * 2 ** F)   # largest vol input round(σ·2^32)
SIGMA_W = SIGMA_TOP.bit_length()             # its bits: 35
RANK_DROP = F - VOL_BITS                     # the ranking uses σ's bits from 2^-24 up
CHUNK = 1000  # options per checked session: it keeps every product of a chunk for its check


def field(rt):
    """The field of the checked secure evaluation: MPyC's for SecInt(SECURE_TYPE_BITS)."""
    return rt.SecInt(SECURE_TYPE_BITS).field


async def price(rt, vols: list[float], public: dict, names: list[str] | None = None) -> dict:
    """As ``protocols.pricing.price`` for the secure evaluation: {"breached": [option
    indices], "rows": revealed signed integer rows, "scale_bits"}, or with reveal
    "coordinator" this party's Shamir shares of the rows instead ("share")."""
    _check_public(vols, public)
    n = len(rt.parties)
    kind, keep, divisor = plan(n, public["method"])
    if kind != "secure":
        raise PricingError(f"the {public['method']} of {n} parties is an exact selection:"
                           " protocols.pricing_active prices it")
    await agree_prss_keys(rt, names)  # the PRSS masks are bounded only if the keys agree
    vols = np.asarray(vols, dtype=float)
    gf, points = field(rt), list(range(1, n + 1))

    def session() -> CheckedOps:  # comparisons' bitwise work in a session over GF(2^31 - 1)
        return CheckedOps(Checked(rt, gf.modulus, points, names), gf,
                          Checked(rt, M31, points, names))
    limit = int(round(public["limit"] * 2 ** LIMIT_BITS))
    breached, parts = await by_chunks(len(vols), CHUNK, lambda idx: _chunk(
        session(), vols[idx], public, idx, keep, divisor, limit))
    result = {"breached": breached, "scale_bits": F}
    if (unrevealed := nothing_to_reveal(parts, public, breached)) is not None:
        return result | unrevealed
    ops = session()
    return result | await _reveal(ops, parts, public)


async def _chunk(ops: CheckedOps, vols, public: dict, idx, keep, divisor: int, limit: int):
    """(breached option indices, indices that passed, this party's shares of their rows, or
    None when none passed or a portfolio chunk breached)."""
    s, n, m = ops.s, ops.s.m, len(vols)
    sigma = _fixed(vols, F)
    if any(v > SIGMA_TOP or v < 0 for v in sigma):
        raise PricingError("a volatility is outside the domain")
    bits = np.array([[int(v) >> j & 1 for j in range(SIGMA_W)] for v in sigma], dtype=object)
    s.prepare_check()
    bits = (await s.deal(bits.ravel())).reshape(n, m, SIGMA_W)

    # 1. the bit check (every vol in range before a comparison opens it); ranks and indicators
    await _check_bits(s, bits)
    ranks = await _ranks(ops, bits[..., RANK_DROP:])
    wanted = sorted({0, n - 1, *(keep or [])})
    indicators = dict(zip(wanted, await bitwise.rank_indicators(s, ranks, wanted)))

    # 2. the kept sum and the spread
    values = sum(bits[..., j] << j for j in range(SIGMA_W)) % s.p  # (n, m)
    spread_weight = (indicators[n - 1] - indicators[0]) % s.p
    weights = [spread_weight] + ([] if keep is None else
                                 [sum(indicators[k] for k in keep) % s.p])
    products = await s.mul(np.stack(weights), np.stack([values] * len(weights)))
    spread = products[0].sum(axis=0)
    kept = values.sum(axis=0) if keep is None else products[1].sum(axis=0)

    # 3. the breaker: [L·Σ kept − 2^12·divisor·spread < 0]
    over = limit * kept - (divisor << LIMIT_BITS) * spread
    bound = (limit + (divisor << LIMIT_BITS)) * divisor * SIGMA_TOP
    breach = await ops.open(await ops.lt_zero(over, bound.bit_length() + 1, bound))
    ok = np.flatnonzero(breach == 0)
    breached = [int(idx[i]) for i in np.flatnonzero(breach)]
    if len(ok) == 0 or (public["portfolio"] and breached):
        return breached, idx[ok], None
    out = await secure_bsm(ops, kept[ok], None, divisor, public, idx[ok])
    await s.verify()  # the session ends here: its last products are checked in it
    return breached, idx[ok], out


async def _check_bits(s: Checked, bits) -> None:
    """Stop unless every value party j dealt as a bit (bits[j]) is one: for public α from a
    coin opened after the dealing, Σ αᵢ·bᵢ(1 − bᵢ) per dealer, one inner product (checked),
    is opened after the batch check; a nonzero one names the dealer (it is 0 for a non-bit
    with probability 1/p per repetition).  One product per dealer, where
    ``bitwise.check_bits`` takes one per bit."""
    flat = bits.reshape(s.m, -1)
    for _ in range(s.reps):
        (seed,) = await s.open(await s.deal_random(1))
        alpha = s.coefficients(int(seed), flat.shape[1])
        sums = await s.inner((flat * alpha % s.p).T, ((1 - flat) % s.p).T)
        await s.verify()
        culprits = [j for j, v in enumerate(await s.open(sums)) if v != 0]
        if culprits:
            raise Deviation(f"{', '.join(s.names[j] for j in culprits)} dealt an input whose"
                            f" bits are not all 0 or 1", culprits)


async def _ranks(ops: CheckedOps, top_bits):
    """Rank (0 = smallest) of each party's number, for the bits top_bits[a] (shape (n, m, w))
    of party a's: the n(n−1)/2 comparisons of the differences in one batch (``lt_zero``),
    ties broken by party order, as ``bitwise.ranks`` (which compares the bits in the large
    field, some twenty times the products)."""
    p, n, w = ops.p, len(top_bits), top_bits.shape[-1]
    numbers = sum(top_bits[..., j] << j for j in range(w)) % p  # (n, m)
    pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
    later_smaller = await ops.lt_zero(numbers[[b for _, b in pairs]]  # [x_b < x_a]
                                      - numbers[[a for a, _ in pairs]], w + 1, (1 << w) - 1)
    out = np.zeros(numbers.shape, dtype=object)
    for g, (a, b) in zip(later_smaller, pairs):  # x_b < x_a: b comes before a
        out[a] = (out[a] + g) % p
        out[b] = (out[b] + 1 - g) % p
    return out


async def _reveal(ops: CheckedOps, parts: list, public: dict) -> dict:
    """Open the output rows (or their totals), or return this party's checked shares."""
    s, bits = ops.s, F
    out = np.concatenate([o for _, o in parts], axis=1)
    if public["portfolio"]:
        ok = np.concatenate([i for i, _ in parts])
        q = _fixed(np.asarray(public["quantities"], dtype=float)[ok], QTY_BITS)
        bits = F + QTY_BITS
        noise = prss_share(s.rt, ops.field, 1 << (bits - NOISE_BITS), len(out)).value
        centre = comb(s.m, s.t) * (1 << (bits - NOISE_BITS - 1))
        out = ((out * q).sum(axis=1) + noise - centre) % s.p
    if public["reveal"] == "all":
        return {"rows": (await ops.open(out)).tolist(), "scale_bits": bits}
    await s.verify()  # the shares are of checked values only
    return {"scale_bits": bits, "rows": None,
            "share": {"point": s.me + 1, "modulus": s.p, "degree": s.t,
                      "shape": list(out.shape), "values": [int(v) % s.p for v in np.ravel(out)]}}

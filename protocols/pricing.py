"""Joint Black-Scholes-Merton pricing from the parties' private volatilities.

Every party inputs, per option, the volatility it interpolated from its own surface.  The
parties rank the volatilities in MPC, aggregate them (median, mean or trimmed mean), open
one circuit-breaker bit per option (the volatilities spread more than the cluster's limit
around the aggregate), and reveal only prices and Greeks of the options that pass, or only
their quantity-weighted totals.  Spot, strike, rate, dividend and expiry are public.

Two evaluations, chosen by the aggregation (docs/PRICING.md has the derivation):

- exact selection (median of an odd number of parties, trimmed mean of three): the
  aggregate *is* one party's volatility, so each party also inputs its own plaintext
  price and Greeks at its own volatility and the MPC selects the median party's with
  the secret one-hot rank indicator.  No approximation; comparisons and selections only.
- secure evaluation (mean, trimmed mean, median of an even count): 1/(σ√T) by Newton
  iteration from the aggregated private reciprocals, then N(d1), N(d2) and φ(d1) by
  Chebyshev series on [-7.5, 7.5] after a secure clamp (protocols.normal_approx), exactly
  0 or 1 (and 0) beyond it; the price is floored at its no-arbitrage bound.

Outputs are normalised by spot (price/S, delta, gamma·S, vega/S, theta/S) and carried as
integers scaled by 2^32.  Public coefficients that multiply shares are computed with
Python's decimal module, so every party derives the very same integers on any platform.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np

from . import bsm, domain
from . import fixedpoint as fx
from . import normal_approx
from .mpyc_seam import prss_share
from .pricing_plan import PricingError, plan

VOL_BITS = 24      # volatilities are ranked as round(σ·2^24)
F = 32             # fraction bits of outputs and of the secure evaluation
NF = 48            # fraction bits of σ, σ√T, d and the normal functions (secure evaluation)
MF = 44            # fraction bits of m = ln(S/K) + (r−q)T: its rounding is multiplied by 1/(σ√T)
CLAMP_BITS = 10    # the clamp compares d/B at 2^-10 (short comparisons)
LIMIT_BITS = 12    # breaker limit resolution 2^-12
BREAKER_DROP = 20  # the breaker compares to 2^-16 of a vol point (1.5e-5)
QTY_BITS = 24      # quantities as round(q·2^24)
NOISE_BITS = 24    # portfolio totals are opened with PRSS noise below 2^-24 (× spot)
# secure integer types (MPyC picks a prime of about bits + 32 bits); comparisons cost per
# random bit, and each bit a square root modulo that prime, so the smallest that fits wins
SELECT_TYPE_BITS = 48     # exact path: vols, ranks, selected outputs; breaker truncation
TOTALS_TYPE_BITS = 88     # exact path with portfolio totals (< 2^108)
SECURE_TYPE_BITS = 108    # secure evaluation: products before truncation (< 2^99) + 2^30 mask
PRODUCT_BITS = F + NF + 20  # bound on any product before truncation
CHUNK = 2500  # 10 % less party CPU than chunks of 1,000 (2026-11-30, 10,000 options)
_VOL_TOP = round(domain.VOL_MAX * 2 ** VOL_BITS)  # largest vol input, scaled

REVEAL = ("all", "coordinator")


def _fixed(values, bits: int = F) -> np.ndarray:
    """round(v·2^bits) of each value as Python ints (an object array): in float64, which
    scales by a power of two exactly and rounds half to even as round() does, wherever the
    results fit int64; element by element otherwise (and for NaN, which round() refuses)."""
    scaled = np.ravel(np.asarray(values, dtype=float)) * 2.0 ** bits
    if not np.all(np.abs(scaled) < 2.0 ** 62):
        return np.array([int(round(float(v))) for v in scaled], dtype=object)
    return np.rint(scaled).astype(np.int64).astype(object)


def _check_public(vols, public: dict) -> None:
    m = len(public["strikes"])
    if len(vols) != m or len(public["expiries"]) != m or len(public["is_call"]) != m:
        raise PricingError("vols, strikes, expiries and types must have one entry per option")
    if public["reveal"] not in REVEAL:
        raise PricingError(f"unknown reveal mode {public['reveal']!r}")
    if not 0 < public["limit"] < 1:
        raise PricingError(f"circuit-breaker limit {public['limit']} must be in (0, 1)")
    domain.check(public["strikes"], public["expiries"], public["spot"], public["rate"],
                 public["dividend"])
    domain.check_vols(vols)


async def price(rt, vols: list[float], public: dict) -> dict:
    """Price the public options at the aggregate of the parties' private ``vols``.

    ``public``: spot, rate, dividend, is_call, strikes, expiries, quantities (or None),
    greeks, portfolio, method, limit (relative spread), reveal ("all"|"coordinator").
    Returns {"breached": [option indices], "rows": revealed integer rows, "scale_bits"}
    or, with reveal "coordinator", this party's Shamir shares of the rows instead.
    Options go through in chunks of CHUNK: MPyC's cost per element grows with the array
    size beyond a few thousand elements."""
    _check_public(vols, public)
    vols = np.asarray(vols, dtype=float)
    with fx.cheap_random_bits(rt):
        breached, parts = await by_chunks(
            len(vols), CHUNK, lambda idx: _chunk(rt, vols[idx], public, idx))
        result = {"breached": breached, "scale_bits": F}
        if (unrevealed := nothing_to_reveal(parts, public, breached)) is not None:
            return result | unrevealed
        return result | await _reveal(rt, parts, public)


async def by_chunks(count: int, size: int, run_chunk) -> tuple[list[int], list]:
    """Await ``run_chunk(indices)`` -> (breached, passed indices, rows or None) over the
    options in chunks of ``size``: (every breached index, [(passed, rows)] of the chunks with
    rows)."""
    breached, parts = [], []
    for start in range(0, count, size):
        chunk_breached, ok, out = await run_chunk(np.arange(start, min(count, start + size)))
        breached += [int(i) for i in chunk_breached]
        if out is not None:
            parts.append((ok, out))
    return breached, parts


def nothing_to_reveal(parts: list, public: dict, breached: list) -> dict | None:
    """The rows of a result that reveals nothing (None: there is something to reveal): a
    portfolio with a breached option reveals no totals, and no option may have passed."""
    if public["portfolio"] and breached:
        return {"rows": None}
    return None if parts else {"rows": []}


async def _chunk(rt, vols, public: dict, idx):
    """Breaker and secret output rows for the options ``idx``: (breached indices, indices
    that passed, secret rows of those or None)."""
    n, m = len(rt.parties), len(vols)
    kind, keep, divisor = plan(n, public["method"])
    sec = rt.SecInt(SECURE_TYPE_BITS if kind == "secure" else
                    TOTALS_TYPE_BITS if public["portfolio"] else SELECT_TYPE_BITS)

    rows = [_fixed(vols, VOL_BITS)]
    if kind == "exact":
        mine = bsm.bsm(np.asarray(public["is_call"])[idx], public["spot"],
                       np.asarray(public["strikes"])[idx], np.asarray(public["expiries"])[idx],
                       public["rate"], public["dividend"], vols)
        own = _fixed(bsm.normalise(mine, public["spot"], public["greeks"]))
        if _top(own) >= 1 << (SELECT_TYPE_BITS - 1):  # not in the domain
            raise PricingError(f"an output exceeds {SELECT_TYPE_BITS} bits")
        rows += list(own.reshape(-1, m))
    else:  # 1/σ and σ at 2^-32: the 24-bit ranking grid would cost σ = 0.001 3e-5 relative
        rows += [_fixed(1 / vols), _fixed(vols)]
    inputs = rt.input(sec.array(np.array(rows)), senders=None)
    sigmas = [x[0] for x in inputs]

    rank = fx.ranks(rt, sigmas, VOL_BITS + 4)  # |σ_a − σ_b| < 5·2^24 < 2^27
    ind = fx.rank_indicators(rt, rank, n, sorted({0, n - 1, *(keep or [])}))
    spread_weight = [ind[n - 1][i] - ind[0][i] for i in range(n)]
    weight = None if keep is None else [sum(ind[k][i] for k in keep) for i in range(n)]

    left, right = list(sigmas), list(spread_weight)
    if weight is not None:
        left += sigmas + ([] if kind == "exact" else [x[r] for r in (1, 2) for x in inputs])
        right += weight + ([] if kind == "exact" else weight + weight)
    prods = rt.np_stack(left) * rt.np_stack(right)
    spread = sum(prods[i] for i in range(n))
    if weight is None:
        sigma_sum, recip_sum = sum(sigmas), sum(x[1] for x in inputs)
        fine_sum = None if kind == "exact" else sum(x[2] for x in inputs)
    else:
        sigma_sum = sum(prods[n + i] for i in range(n))
        recip_sum = None if kind == "exact" else sum(prods[2 * n + i] for i in range(n))
        fine_sum = None if kind == "exact" else sum(prods[3 * n + i] for i in range(n))

    limit = int(round(public["limit"] * 2 ** LIMIT_BITS))
    # the breaker decides to 2^-(VOL_BITS + LIMIT_BITS - BREAKER_DROP) of a vol point: drop
    # low bits first (cheap) so that the comparison is short (costly per bit).  The slack
    # makes it conservative: an option passes only if spread < limit·aggregate exactly
    # (the truncation rounds up by at most d units), which the secure path relies on.
    e = fx.prss_subsets(rt)
    slack = (e + 1) << BREAKER_DROP
    over = limit * sigma_sum - (divisor << LIMIT_BITS) * spread - slack
    bits = VOL_BITS + LIMIT_BITS + divisor.bit_length() + 5
    over_bound = (divisor << LIMIT_BITS) * _VOL_TOP + slack  # sums of at most divisor vols
    over = fx.trunc(rt, over, BREAKER_DROP, bits, over_bound)
    breached = np.asarray(await rt.output(fx.lt_zero(rt, over, bits - BREAKER_DROP + 1,
                                                     (over_bound >> BREAKER_DROP) + e + 1)),
                          dtype=int).astype(bool)
    ok = np.flatnonzero(~breached)
    breached_idx = [int(idx[i]) for i in np.flatnonzero(breached)]
    if len(ok) == 0 or (public["portfolio"] and breached_idx):
        return breached_idx, idx[ok], None
    if kind == "exact":
        w = rt.np_stack([weight[i][ok] for i in range(n)])
        selected = [inputs[i][1:, ok] * w[i] for i in range(n)]
        out = sum(selected[1:], selected[0])
    else:
        out = await secure_bsm(fx.MpcOps(rt), fine_sum[ok], recip_sum[ok], divisor, public,
                               idx[ok])
    return breached_idx, idx[ok], out


async def _reveal(rt, parts: list, public: dict) -> dict:
    """Open the output rows (or their totals), or return this party's shares of them."""
    bits = F
    out = rt.np_concatenate([o for _, o in parts], axis=1)
    if public["portfolio"]:
        ok = np.concatenate([i for i, _ in parts])
        q = _fixed(np.asarray(public["quantities"], dtype=float)[ok], QTY_BITS)
        totals = rt.np_sum(out * q, axis=1)
        bits = F + QTY_BITS
        field = type(totals).sectype.field
        d = fx.prss_subsets(rt)
        noise = prss_share(rt, field, 1 << (bits - NOISE_BITS), totals.size)
        out = totals + type(totals)(noise) - d * (1 << (bits - NOISE_BITS - 1))
    if public["reveal"] == "all":
        values = await rt.output(out)
        return {"rows": np.asarray(values, dtype=object).tolist(), "scale_bits": bits}
    shares = await rt.gather(out)
    field = type(out).sectype.field
    return {"scale_bits": bits, "rows": None,
            "share": {"point": rt.pid + 1, "modulus": field.modulus, "degree": rt.threshold,
                      "shape": list(shares.value.shape),
                      "values": [int(v) for v in np.ravel(shares.value)]}}


def _public_coefficients(public: dict, ok, divisor: int) -> dict[str, np.ndarray]:
    """Per-option constants of the secure evaluation, as integers scaled by 2^F (m by
    2^MF), computed in decimal arithmetic so that all parties agree to the last bit."""
    out = {k: [] for k in ("m", "sqrt_t", "y0", "y_max", "dq", "dq_sqrt_t", "kdr",
                           "theta_pdf", "r_kdr", "q_dq", "floor", "put")}
    with localcontext() as ctx:
        ctx.prec = 40
        spot, r, q = (Decimal(repr(float(public[k]))) for k in ("spot", "rate", "dividend"))
        per_expiry = {}  # books repeat expiries: e^(-qT), e^(-rT) and √T once per expiry
        for j in ok:
            k = Decimal(repr(float(public["strikes"][j])))
            t = Decimal(repr(float(public["expiries"][j])))
            if t not in per_expiry:
                per_expiry[t] = ((-q * t).exp(), (-r * t).exp(), t.sqrt())
            dq, dr, sqrt_t = per_expiry[t]
            kdr = k / spot * dr
            out["m"].append((spot / k).ln() + (r - q) * t)
            out["sqrt_t"].append(sqrt_t)
            out["y0"].append(1 / (divisor * sqrt_t))
            out["y_max"].append(1 / (Decimal(repr(domain.VOL_MAX)) * sqrt_t))
            out["dq"].append(dq)
            out["dq_sqrt_t"].append(dq * sqrt_t)
            out["kdr"].append(kdr)
            out["theta_pdf"].append(dq / (2 * sqrt_t))
            out["r_kdr"].append(r * kdr)
            out["q_dq"].append(q * dq)
            # no-arbitrage lower bound: S·e^(−qT) − K·e^(−rT) for a call, the reverse for a put
            out["floor"].append(max(0, (dq - kdr) if public["is_call"][j] else (kdr - dq)))
            out["put"].append(0 if public["is_call"][j] else 1)
    fixed = {k: np.array([int((Decimal(v) * Decimal(2) ** (MF if k == "m" else F))
                               .to_integral_value()) for v in vals], dtype=object)
             for k, vals in out.items() if k != "put"}
    fixed["put"] = np.array(out["put"], dtype=object)
    return fixed


def newton_steps(limit: float) -> int:
    """Newton iterations that take 1/(σ√T) to 2^-34 relative error from the aggregated
    reciprocals, whose error is at most limit/(1-limit) when the breaker holds (the limit
    as the breaker uses it, rounded to 2^-12).  A limit above domain.SECURE_LIMIT_MAX is refused:
    the magnitude bounds need the start error below 1 with room for rounding."""
    used = round(limit * 2 ** LIMIT_BITS) / 2 ** LIMIT_BITS
    if used > domain.SECURE_LIMIT_MAX:
        raise PricingError(f"circuit-breaker limit {limit} is too loose for the mean or"
                           f" trimmed aggregation (it needs a limit of at most"
                           f" {domain.SECURE_LIMIT_MAX})")
    e0 = used / (1 - used)
    return max(1, math.ceil(math.log2(34 * math.log(2) / -math.log(e0))))


def public_start_steps() -> int:
    """Newton iterations that take 1/(σ√T) to 2^-34 relative error from the public start
    1/(VOL_MAX·√T), whatever σ in the domain: the error 1 − σ/VOL_MAX squares each step."""
    e0 = 1 - domain.VOL_MIN / domain.VOL_MAX
    return max(1, math.ceil(math.log2(34 * math.log(2) / -math.log(e0))))


def _top(x) -> int:
    """Largest magnitude in an integer or an object array of integers."""
    return int(np.max(np.abs(np.asarray(x, dtype=object))))


def _chebyshev_bound(e: int) -> int:
    """A bound on |T_k(w)|·2^NF, k <= DEGREE, for w = 2u² − 1 with |u| <= 1: its rounding
    leaves w within (2e + 2)·2^-NF of [-1, 1], and T_k(1 + δ) = cosh(k·acosh(1 + δ)); 1 %
    and 2^24 units for the doubling's rounding."""
    grow = math.cosh(normal_approx.DEGREE * math.acosh(1 + (2 * e + 2) / 2 ** NF))
    return int(grow * 1.01 * 2 ** NF) + (1 << 24)


async def secure_bsm(ops, fine_sum, recip_sum, divisor: int, public: dict, ok):
    """Normalised price (and Greeks) rows from the secret aggregate volatility: ``fine_sum``
    and ``recip_sum`` are the aggregated σ and 1/σ scaled by 2^F, ``divisor`` times over;
    ``recip_sum`` None starts Newton's iteration at a public 1/(σ_max·√T) instead, from
    below (``public_start_steps``).  ``ops`` does the secret arithmetic: MPyC's
    (``fixedpoint.MpcOps``) or a checked session's (``fixed_active.CheckedOps``).

    σ, σ√T, d and the normal functions carry NF fraction bits, the outputs F.  Every
    truncation and comparison passes its bound on |input|: per option, from the public
    coefficients and the vol range, in exact integers (docs/PRICING.md, "Accepted domain",
    derives each one); ``*_b`` names such bounds.  fx refuses a bound beyond the declared
    length, so a parameter outside the domain fails here instead of unmasking."""
    c = _public_coefficients(public, ok, divisor)
    one, lp, e = 1 << F, PRODUCT_BITS, ops.e  # e: round-up of a truncation
    one_n = 1 << NF
    a = {k: np.abs(v) for k, v in c.items()}

    to_mean = round(Decimal(2) ** NF / divisor)  # σ̄ at 2^-NF from the sum at 2^-F
    sigma_in_b = (divisor * round(domain.VOL_MAX * one) + divisor) * to_mean
    sigma = await ops.trunc(fine_sum * to_mean, F, lp, sigma_in_b)
    sigma_b = (sigma_in_b >> F) + e
    s = await ops.trunc(sigma * c["sqrt_t"], F, lp, _top(sigma_b * a["sqrt_t"]))  # σ√T, 2^-NF
    s_b = ((sigma_b * a["sqrt_t"]) >> F) + e
    recip_b = divisor * (round(one / domain.VOL_MIN) + 1)
    if recip_sum is None:  # from below: y <= 1/(σ√T) throughout, up to roundings
        y, steps = c["y_max"], public_start_steps()
        y_b = 2 * (((recip_b * a["y0"]) >> F) + e)
    else:
        y = await ops.trunc(recip_sum * c["y0"], F, lp, _top(recip_b * a["y0"]))  # ≈ 1/(σ√T)
        y_b = 2 * (((recip_b * a["y0"]) >> F) + e)  # Newton keeps y below twice its start
        steps = newton_steps(public["limit"])
    for _ in range(steps):
        sy = await ops.mul_trunc(s, y, NF, lp, _top(s_b * y_b))  # in [0, 2·one] (start < 2/s)
        y = await ops.mul_trunc(y, 2 * one - sy, F, lp, _top(y_b * (2 * one + e)))
    # d1 = m·y + s/2 at 2^-(MF+F), rescaled to 2^-NF; d2 = d1 − s
    d1_in_b = a["m"] * y_b + s_b * (1 << (MF + F - NF - 1))
    d1 = await ops.trunc(c["m"] * y + s * (1 << (MF + F - NF - 1)), MF + F - NF, lp,
                         _top(d1_in_b))
    d_b = _top((d1_in_b >> (MF + F - NF)) + e + s_b)  # |d1| and |d2| = |d1 − s|
    d = ops.stack([d1, d1 - s])

    # u = d/B at 2^-NF, clamped to [-1, 1] by comparisons of a 2^-CLAMP_BITS copy: "high"
    # only if u >= 1 − e·2^-CLAMP_BITS, otherwise u < 1 (and the same below)
    b = int(round(2 ** F / normal_approx.BOUND))
    u = await ops.trunc(d * b, F, lp, d_b * b)
    u_b = ((d_b * b) >> F) + e
    coarse = await ops.trunc(u, NF - CLAMP_BITS, lp, u_b)
    coarse_b = (u_b >> (NF - CLAMP_BITS)) + e + (1 << CLAMP_BITS)
    side = await ops.lt_zero(ops.stack([(1 << CLAMP_BITS) - 1 - coarse,
                                        coarse + (1 << CLAMP_BITS) - e]),
                             coarse_b.bit_length() + 1, coarse_b)
    high, low = side[0], side[1]
    inside = 1 - high - low
    u = await ops.mul(inside, u) + (high - low) * one_n
    w = 2 * await ops.mul_trunc(u, u, NF, lp, one_n * one_n) - one_n
    t_b = _chebyshev_bound(e)
    basis = await fx.chebyshev_basis(ops, w, normal_approx.DEGREE, NF, lp, t_b)
    scale = normal_approx.FRAC_BITS
    odd = sum(k * t for k, t in zip(normal_approx.CDF[1:], basis[1:]) if k)
    odd_in_b = sum(map(abs, normal_approx.CDF)) * t_b
    odd = await ops.trunc(odd + normal_approx.CDF[0] * one_n, scale, lp, odd_in_b)
    odd_b = (odd_in_b >> scale) + e
    pdf = sum(k * t[0] for k, t in zip(normal_approx.PDF[1:], basis[1:]) if k)
    pdf_in_b = sum(map(abs, normal_approx.PDF)) * t_b
    pdf = await ops.trunc(pdf + normal_approx.PDF[0] * one_n, scale, lp, pdf_in_b)
    p_b = (pdf_in_b >> scale) + e
    half = await ops.mul_trunc(u, odd, NF, lp, one_n * odd_b)  # N − 1/2 inside the clamp
    # beyond the clamp: N exactly 0 or 1, φ exactly 0
    shaped = await ops.mul(ops.stack([half[0], half[1], pdf]),
                           ops.stack([inside[0], inside[1], inside[0]]))
    n1, n2 = (shaped[i] + inside[i] * (one_n >> 1) + high[i] * one_n for i in (0, 1))
    n_b = ((one_n * odd_b) >> NF) + e + one_n
    pdf = shaped[2]

    # rows at 2^-(F+NF): public coefficients (2^-F) times the normal functions (2^-NF)
    rows = [c["dq"] * n1 - c["kdr"] * n2 + c["put"] * (c["kdr"] - c["dq"]) * one_n]
    rows_b = [(a["dq"] + a["kdr"]) * n_b + c["put"] * (a["kdr"] + a["dq"]) * one_n]
    if public["greeks"]:
        py = await ops.mul_trunc(pdf, y, F, lp, p_b * _top(y_b))        # φ/(σ√T) at 2^-NF
        psigma = await ops.mul_trunc(pdf, sigma, NF, lp, p_b * sigma_b)  # φ·σ at 2^-NF
        py_b, psigma_b = ((p_b * y_b) >> F) + e, ((p_b * sigma_b) >> NF) + e
        rows += [c["dq"] * n1 - c["put"] * c["dq"] * one_n,
                 c["dq"] * py,
                 c["dq_sqrt_t"] * pdf,
                 -c["theta_pdf"] * psigma - c["r_kdr"] * n2 + c["q_dq"] * n1
                 + c["put"] * (c["r_kdr"] - c["q_dq"]) * one_n]
        rows_b += [a["dq"] * n_b + c["put"] * a["dq"] * one_n,
                   a["dq"] * py_b,
                   a["dq_sqrt_t"] * p_b,
                   a["theta_pdf"] * psigma_b + (a["r_kdr"] + a["q_dq"]) * (n_b + c["put"] * one_n)]
    out = await ops.trunc(ops.stack(rows), NF, lp, max(map(_top, rows_b)))
    # no price below its no-arbitrage bound (and so none negative): one comparison
    price, floor = out[0], c["floor"]
    under_b = _top((rows_b[0] >> NF) + e + a["floor"])
    under = await ops.lt_zero(price - floor, under_b.bit_length() + 1, under_b)
    price = price + await ops.mul(under, floor - price)
    return ops.stack([price] + [out[i] for i in range(1, len(rows))])

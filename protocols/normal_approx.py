"""Chebyshev approximations of the standard normal distribution and density on [-B, B].

Secret arguments are clamped to [-B, B] and evaluated as sums c_k·T_k(x/B).  The integer
coefficients below are part of the protocol: every party must multiply its shares by the
very same integers, so they are fixed here rather than recomputed with each machine's
floating point.  ``fit`` regenerates them (tests/test_pricing_numerics.py checks that it
still does and measures the error bounds documented in docs/PRICING.md).
"""

from __future__ import annotations

import math

BOUND = 5.6     # N(-5.6) = 1.1e-8: the clamping error of the distribution function
DEGREE = 32
FRAC_BITS = 32  # coefficients are round(c · 2^32)

# N(B·u) − 1/2: odd, so only odd degrees
CDF = [0, 2689525759, 0, -786069044, 0, 363535496, 0, -176770322, 0, 83162303, 0, -36814167,
       0, 15179334, 0, -5812168, 0, 2067259, 0, -684265, 0, 211321, 0, -61065, 0, 16560, 0,
       -4226, 0, 1016, 0, -222, 0]
# φ(B·u): even, so only even degrees
PDF = [248349419, 0, -463846076, 0, 378370757, 0, -270799772, 0, 171126034, 0, -96181370, 0,
       48445714, 0, -22029766, 0, 9106846, 0, -3444367, 0, 1198861, 0, -386049, 0, 115560, 0,
       -32296, 0, 8463, 0, -2106, 0, 591]


def fit(bound: float = BOUND, degree: int = DEGREE, frac_bits: int = FRAC_BITS):
    """(cdf, pdf) integer Chebyshev coefficients, interpolated at Chebyshev points."""
    import numpy as np
    from numpy.polynomial import chebyshev

    erf = np.frompyfunc(math.erf, 1, 1)

    def cdf(u):
        return erf(bound * u / math.sqrt(2)).astype(float) / 2

    def pdf(u):
        return np.exp(-(bound * u) ** 2 / 2) / math.sqrt(2 * math.pi)

    c = chebyshev.chebinterpolate(cdf, degree)
    p = chebyshev.chebinterpolate(pdf, degree)
    c[0::2], p[1::2] = 0, 0
    return ([int(round(x * 2 ** frac_bits)) for x in c],
            [int(round(x * 2 ** frac_bits)) for x in p])

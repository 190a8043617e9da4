"""Shamir sharing arithmetic on plain integers modulo a prime: Lagrange coefficients and
interpolation at any point.  No MPC and no secrets in here: the callers apply the
coefficients to share values, to curve points (secp256k1, Ed25519) or to opened shares.

A share point x is the evaluation point of a party's share (roster party i holds f(i + 1));
share points must be distinct and nonzero modulo the prime, since f(0) is the secret.

Run its tests with ``pytest tests/test_shamir.py``.
"""

from __future__ import annotations

from collections.abc import Sequence


def lagrange_coefficients(xs: Sequence[int], at: int, modulus: int) -> list[int]:
    """λ_j with f(at) = Σ λ_j·f(xs[j]) mod ``modulus`` (a prime) for every polynomial f of
    degree below len(xs); the share points ``xs`` must be distinct and nonzero mod it."""
    points = [x % modulus for x in xs]
    if not points:
        raise ValueError("no share points to interpolate from")
    if len(set(points)) != len(points) or 0 in points:
        raise ValueError(f"share points must be distinct and nonzero modulo the prime: {list(xs)}")
    coefficients = []
    for j, xj in enumerate(points):
        numerator = denominator = 1
        for m, xm in enumerate(points):
            if m != j:
                numerator = numerator * (at - xm) % modulus
                denominator = denominator * (xj - xm) % modulus
        coefficients.append(numerator * pow(denominator, -1, modulus) % modulus)
    return coefficients


def rank_basis(n: int, k: int, modulus: int) -> list[int]:
    """Coefficients c (constant first) of the Lagrange basis polynomial over the ranks
    0..n-1 that is 1 at k and 0 at every other rank, mod ``modulus``: Σ cᵢ·rⁱ = [r = k]."""
    coefficients, denominator = [1], 1
    for j in range(n):
        if j != k:  # multiply by (r − j)
            coefficients = [(a - j * b) % modulus for a, b in
                            zip([0] + coefficients, coefficients + [0])]
            denominator = denominator * (k - j) % modulus
    inverse = pow(denominator, -1, modulus)
    return [c * inverse % modulus for c in coefficients]


def interpolate(xs: Sequence[int], shares: Sequence[Sequence[int]], at: int,
                modulus: int) -> list[int]:
    """The polynomials through the share vectors, evaluated at ``at``: ``shares[j]`` is the
    vector held at point ``xs[j]``, and element k of the result is f_k(at) in 0..modulus-1
    for the polynomial f_k of degree below len(xs) through the k-th elements."""
    if len(shares) != len(xs) or len({len(s) for s in shares}) > 1:
        raise ValueError("one share vector per point, all of the same length, is required")
    coefficients = lagrange_coefficients(xs, at, modulus)
    return [sum(c * v for c, v in zip(coefficients, column)) % modulus
            for column in zip(*shares)]

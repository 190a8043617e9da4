"""Which evaluation a joint price's aggregation needs (docs/PRICING.md): pure, without MPyC,
so that a coordinator and a node's vote can plan as the session will."""

from __future__ import annotations

METHODS = ("median", "mean", "trimmed")


class PricingError(ValueError):
    """The request cannot be priced as asked (the message says why)."""


def plan(n: int, method: str) -> tuple[str, list[int] | None, int]:
    """(kind, ranks that get weight 1 — None for all parties —, divisor) of an aggregation
    of n values; kind is "exact" when the aggregate is always one party's value."""
    if method not in METHODS:
        raise PricingError(f"unknown aggregation {method!r}; expected one of {METHODS}")
    if method == "mean" or (method == "trimmed" and n < 3):
        return "secure", None, n
    if method == "trimmed":
        keep = list(range(1, n - 1))
    else:
        keep = [n // 2] if n % 2 else [n // 2 - 1, n // 2]
    return ("exact" if len(keep) == 1 else "secure"), keep, len(keep)

"""Secure aggregation of one private number per party: median or mean, revealing only that."""

from __future__ import annotations

METHODS = ("median", "mean")


def secfxp_type(rt):
    """The fixed-point type used for aggregation: 64-bit with 32 fractional bits."""
    return rt.SecFxp(64, 32)


async def aggregate(rt, value: float, method: str = "median") -> float:
    """Each party inputs ``value``; all learn only the median (or mean) of the inputs.

    The median of an even count is the mean of the two middle values.  Runs a fixed
    sequence of secure operations for a given party count, so all parties stay in step.
    """
    if method not in METHODS:
        raise ValueError(f"unknown aggregation method {method!r}; expected one of {METHODS}")
    secfxp = secfxp_type(rt)
    shares = rt.input(secfxp(value), senders=None)
    if method == "mean":
        result = rt.sum(shares) / len(shares)
    else:
        ordered = rt.sorted(shares)
        m = len(ordered)
        result = ordered[m // 2] if m % 2 else (ordered[m // 2 - 1] + ordered[m // 2]) / 2
    return float(await rt.output(result))

"""The public parameters the pricing protocol accepts, and the private vols it assumes.

Every fixed-point intermediate of protocols.pricing has a declared bit length, and the
masks of its truncations and comparisons hide a value only while it stays below that
length.  The bounds below are what the proof in docs/PRICING.md ("Accepted domain") needs;
the job parameters are refused outside them (coordinator and nodes), each node keeps its
own vols inside them, and the protocol checks them again before it computes.
"""

from __future__ import annotations

VOL_MIN, VOL_MAX = 0.001, 5.0          # every party's volatility
EXPIRY_MIN, EXPIRY_MAX = 1e-3, 10.0    # years (1e-3 is 8.76 hours)
MONEYNESS_MIN, MONEYNESS_MAX = 1e-3, 1e3  # strike / spot
RATE_MAX = 0.25                        # |rate| and |dividend| (continuous, per year)
SECURE_LIMIT_MAX = 0.45                # breaker limit of the secure evaluation (Newton start)


class DomainError(ValueError):
    """A parameter lies outside the domain the fixed-point bounds were derived for."""


def check(strikes, expiries, spot: float, rate: float, dividend: float) -> None:
    """Raise DomainError naming the first parameter outside the domain, and its bound."""
    for name, x in (("rate", rate), ("dividend", dividend)):
        if not -RATE_MAX <= x <= RATE_MAX:
            raise DomainError(f"{name} {x:g} is outside [-{RATE_MAX:g}, {RATE_MAX:g}]")
    if not spot > 0:
        raise DomainError(f"spot {spot:g} must be > 0")
    for i, (k, t) in enumerate(zip(strikes, expiries)):
        if not EXPIRY_MIN <= t <= EXPIRY_MAX:
            raise DomainError(f"option {i}: expiry {t:g} years is outside"
                              f" [{EXPIRY_MIN:g}, {EXPIRY_MAX:g}]")
        if not MONEYNESS_MIN <= k / spot <= MONEYNESS_MAX:
            raise DomainError(f"option {i}: strike/spot {k / spot:g} is outside"
                              f" [{MONEYNESS_MIN:g}, {MONEYNESS_MAX:g}]")


def check_vols(vols) -> None:
    """Raise DomainError if one of this party's own vols is outside [VOL_MIN, VOL_MAX]."""
    for i, v in enumerate(vols):
        if not VOL_MIN <= v <= VOL_MAX:
            raise DomainError(f"option {i}: vol outside [{VOL_MIN:g}, {VOL_MAX:g}]")

"""What a FROST key may sign: its purpose, fixed at keygen, and the domains of signed bytes.

purpose "reports"  signs only price reports, as REPORT_DOMAIN || canonical report, and only
                   the report each signing node rebuilds from its own record of the job
                   (mpc_nodes.jobs.price_report);
purpose "raw"      signs the messages an authorised coordinator asks for, byte for byte,
                   except any that begins with RESERVED (the namespace of typed domains).

Every typed domain tag begins with RESERVED and ends with NUL, so the bytes a raw key signs
and the bytes any typed domain is verified over are disjoint sets: a raw signature never
verifies as a report, whatever the message, and a reports key signs nothing else.
FROST keys made before purposes existed have none and are treated as raw keys.
"""

from __future__ import annotations

from typing import Literal

Purpose = Literal["raw", "reports"]
DEFAULT_PURPOSE = "raw"
RESERVED = b"mpcnet/frost/"
REPORT_DOMAIN = RESERVED + b"price-report/v2\x00"


class DomainError(ValueError):
    """A message this key's purpose does not allow it to sign."""


def purpose_of(stored: str | None) -> str:
    return stored or DEFAULT_PURPOSE


def check_raw(message: bytes) -> None:
    """Raise DomainError if a raw key must not sign `message`."""
    if message.startswith(RESERVED):
        raise DomainError(f"a raw message may not begin with {RESERVED.decode()!r}: that"
                          f" prefix is reserved for typed domains such as price reports")

"""Create a fresh MPyC runtime per session, without letting MPyC read our command line.

MPyC 0.11 parses ``sys.argv`` when ``mpyc`` and ``mpyc.runtime`` are first imported and keeps
one global runtime, referenced from several of its modules.  A daemon runs many sessions with
different party sets, so it imports MPyC once with a clean argument list and then installs a
new :class:`mpyc.runtime.Runtime` for every session, exactly as ``mpyc.runtime.setup`` does.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

_imported = False


def import_mpyc():
    """Import ``mpyc.runtime`` once with an empty command line (so MPyC flags are never parsed)."""
    global _imported
    saved = sys.argv
    if not _imported:
        sys.argv = [saved[0] if saved else "mpcnet", "--no-log"]
    try:
        import mpyc.runtime as runtime_module
    finally:
        sys.argv = saved
    if not _imported:
        _use_bulk_randomness()
    _imported = True
    return runtime_module


def _use_bulk_randomness() -> None:
    """Make MPyC draw Shamir polynomial coefficients from one os.urandom call per batch.

    MPyC 0.11 calls secrets.randbelow once per coefficient: a system call each, the largest
    single cost of resharing a few thousand products.  Here each coefficient is a random
    integer at least 64 bits longer than the field modulus, taken modulo it with the shares
    (statistical distance below 2^-64 from uniform); the rest is MPyC's own code."""
    import numpy as np
    from mpyc import thresha

    mpyc_split = thresha.np_random_split

    def np_random_split(field, s, t, m):
        p = field.modulus
        if not isinstance(p, int) or t == 0:
            return mpyc_split(field, s, t, m)
        if isinstance(s, field.array):
            s = s.value
        n = len(s)
        words = (p.bit_length() + 64 + 63) // 64
        raw = np.frombuffer(os.urandom(8 * words * t * n), dtype=np.uint64).reshape(words, -1)
        coeffs = raw[0].astype(object)
        for w in raw[1:]:  # whole numbers of 64-bit words, as Python ints, in C loops
            coeffs = (coeffs << 64) | w.astype(object)
        v = np.vander(np.arange(1, m + 1, dtype=object), N=t + 1, increasing=True)
        return (v @ np.concatenate((s.reshape(1, n), coeffs.reshape(t, n)))) % p

    thresha.np_random_split = np_random_split


@dataclass(frozen=True)
class PartyAddress:
    """Where one session party listens (host, port)."""

    host: str
    port: int


def new_runtime(pid: int, addresses: list[PartyAddress], threshold: int | None = None):
    """Install and return a new global MPyC runtime for party ``pid`` among ``addresses``.

    ``threshold`` defaults to (m-1)//2, the largest that MPyC's passive security allows.
    The runtime is not started: the caller opens connections (``rt.start()`` for plain TCP,
    or :mod:`mpc_nodes.node.session` for mutually authenticated TLS).
    """
    runtime_module = import_mpyc()
    import mpyc
    import mpyc.mpctools
    import mpyc.random
    import mpyc.secgroups
    import mpyc.seclists
    import mpyc.secpols
    import mpyc.statistics
    from mpyc import asyncoro, sectypes

    m = len(addresses)
    if not 0 <= pid < m:
        raise ValueError(f"party index {pid} outside 0..{m - 1}")
    t = (m - 1) // 2 if threshold is None else threshold
    if not 0 <= 2 * t < m:
        raise ValueError(f"threshold {t} too large for {m} parties (need 2t < m)")
    options = mpyc._get_arg_parser().parse_args(["--no-log"])
    options.threshold = t
    options.no_prss = False
    options.no_async = m == 1
    parties = [runtime_module.Party(i, a.host, a.port) for i, a in enumerate(addresses)]
    rt = runtime_module.Runtime(pid, parties, options)
    for module in (sectypes, asyncoro, mpyc.mpctools, mpyc.seclists, mpyc.secpols,
                   mpyc.secgroups, mpyc.random, mpyc.statistics):
        module.runtime = rt
    runtime_module.mpc = rt
    return rt

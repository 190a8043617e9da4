"""Create a fresh MPyC runtime per session, without letting MPyC read our command line.

MPyC 0.11 parses ``sys.argv`` when ``mpyc`` and ``mpyc.runtime`` are first imported and keeps
one global runtime, referenced from several of its modules.  A daemon runs many sessions with
different party sets, so it imports MPyC once with a clean argument list and then installs a
new :class:`mpyc.runtime.Runtime` for every session, exactly as ``mpyc.runtime.setup`` does.
"""

from __future__ import annotations

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
    _imported = True
    return runtime_module


@dataclass(frozen=True)
class PartyAddress:
    """Where one session party listens (host, port)."""

    host: str
    port: int


def new_runtime(pid: int, addresses: list[PartyAddress], threshold: int | None = None):
    """Install and return a new global MPyC runtime for party ``pid`` among ``addresses``.

    ``threshold`` defaults to (m-1)//2, the largest that MPyC's passive security allows.
    The runtime is not started: the caller opens connections (``rt.start()`` for plain TCP,
    or :mod:`mpc_nodes.session` for mutually authenticated TLS).
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

"""Child process of MpcEngine: reads session specs on stdin, writes results on stdout.

A spec carries its protocol as a function object, which pickle sends by reference (module
and name): unpickling imports it from protocols/, and the session refuses anything else.

Each session runs in its own event loop.  Anything printed by libraries goes to stderr,
since stdout carries only result frames.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import pickle
import pkgutil
import struct
import sys
import traceback

_LEN = struct.Struct(">I")


def _warm_up() -> None:
    """Import every protocol module now, so the first job does not pay for it."""
    import protocols
    for info in pkgutil.walk_packages(protocols.__path__, "protocols."):
        importlib.import_module(info.name)


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (e.g. MPyC logging) go to stderr, not into the frame stream
    logging.basicConfig(level=os.environ.get("MPCNET_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s engine %(levelname)s %(message)s")
    from protocols.mpyc_seam import import_runtime

    from mpc_nodes.node.session import SessionError, run_session

    import_runtime()
    _warm_up()
    inp = sys.stdin.buffer

    def send(obj) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_LEN.pack(len(data)) + data)
        out.flush()

    send(("ready",))
    while True:
        head = inp.read(_LEN.size)
        if len(head) < _LEN.size:
            return
        spec = pickle.loads(inp.read(_LEN.unpack(head)[0]))
        try:
            send(("ok", asyncio.run(run_session(spec))))
        except SessionError as exc:
            send(("error", str(exc)))
        except Exception as exc:  # a protocol bug must still end the session cleanly
            traceback.print_exc()
            send(("error", f"protocol error: {type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    main()

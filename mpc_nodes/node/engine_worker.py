"""Child process of MpcEngine: reads session specs on stdin, writes results on stdout.

A spec carries its protocol as a function object, which pickle sends by reference (module
and name): unpickling imports it from protocols/, and the session refuses anything else.

Sessions run one at a time in one event loop that lives as long as the process, so that
the engine's links to other engines stay open between sessions (mpc_nodes.node.links) and
idle links notice a peer that went away.  Anything printed by libraries goes to stderr, since
stdout carries only result frames.
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
log = logging.getLogger("mpcnet.engine")


def _warm_up() -> None:
    """Import every protocol module now, so the first job does not pay for it."""
    import protocols
    for info in pkgutil.walk_packages(protocols.__path__, "protocols."):
        importlib.import_module(info.name)


def _expected_errors() -> tuple[type[Exception], ...]:
    """The errors protocols raise when their own checks stop a session (a deviation, a
    signature that does not verify, a request they cannot price, a bad point): a reason, not a
    bug, so the engine logs one line for them and a traceback for anything else."""
    from protocols.active import Deviation
    from protocols.ecdsa import SigningError
    from protocols.frost import FrostError
    from protocols.pricing import PricingError
    from protocols.reshare import ReshareError
    from protocols.secp256k1 import CurveError
    return Deviation, SigningError, PricingError, CurveError, FrostError, ReshareError


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (e.g. MPyC logging) go to stderr, not into the frame stream
    logging.basicConfig(level=os.environ.get("MPCNET_LOG_LEVEL", "WARNING"), stream=sys.stderr,
                        format="%(asctime)s engine %(levelname)s %(message)s")
    from protocols.mpyc_seam import import_runtime

    from mpc_nodes.node.links import LinkPool
    from mpc_nodes.node.session import SessionError, run_session

    import_runtime()
    _warm_up()
    expected = _expected_errors()
    inp = sys.stdin.buffer

    def send(obj) -> None:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_LEN.pack(len(data)) + data)
        out.flush()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**26)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), inp)
        pool = LinkPool()
        send(("ready",))
        try:
            while True:
                try:
                    head = await reader.readexactly(_LEN.size)
                    spec = pickle.loads(await reader.readexactly(_LEN.unpack(head)[0]))
                except asyncio.IncompleteReadError:
                    return
                try:
                    send(("ok", await run_session(spec, pool)))
                except SessionError as exc:
                    send(("error", str(exc)))
                except Exception as exc:  # a protocol bug must still end the session cleanly
                    if isinstance(exc, expected):  # a protocol's own check stopped it
                        log.warning("session %s stopped: %s: %s", spec.session_id[:12],
                                    type(exc).__name__, exc)
                    else:
                        traceback.print_exc()
                    send(("error", f"protocol error: {type(exc).__name__}: {exc}"))
        finally:
            pool.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()

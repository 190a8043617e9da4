"""The node's MPC engine: sessions run in a long-lived child process, one at a time.

Running MPyC in a child keeps CPU-heavy protocols from stalling the node's bus connection,
and gives a hard stop: a session that fails or hangs gets its process killed and replaced,
so no half-run MPyC state survives into the next job.  A healthy engine is reused, so the
success path pays no process start-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
import sys

from mpc_nodes.node.session import SessionError, SessionRun, SessionSpec

log = logging.getLogger("mpcnet.engine")
_LEN = struct.Struct(">I")


async def _read_frame(reader: asyncio.StreamReader):
    size = _LEN.unpack(await reader.readexactly(_LEN.size))[0]
    return pickle.loads(await reader.readexactly(size))


def _frame(obj) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(data)) + data


KEEP_HEAP = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
"""glibc: a session's large arrays from the heap, and the heap kept between them.  By
default each array over 128 KiB was a fresh mapping whose pages the kernel zeroed on first
touch: a tenth of a checked pricing party's CPU (10,000 options, three parties: 0.85 → 0.76
CPU-s, page faults 50,000 → 10,000).  The engine keeps its peak heap instead."""


class MpcEngine:
    """Owns the MPC child process; `run` executes one session spec in it."""

    GRACE_S = 5.0
    WORKER = "mpc_nodes.node.engine_worker"

    def __init__(self, on_restart=lambda: None, worker: str = WORKER):
        """`worker`: the child's module (run with ``python -m``); another one only in tests,
        e.g. a party that deviates inside its sessions (tests/adversarial)."""
        self._worker = worker
        self._proc: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Task | None = None
        self._on_restart = on_restart
        self._running = False
        self._starting = False  # in `run`, waiting for the child to be ready
        self._aborted: str | None = None
        self.restarts = 0

    def start(self) -> None:
        """Start a fresh child in the background (the next `run` waits until it is ready)."""
        self._ready = asyncio.ensure_future(self._spawn())

    async def _spawn(self) -> None:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self._worker, env={**os.environ, **KEEP_HEAP},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=2**26)
        hello = await _read_frame(self._proc.stdout)
        if hello != ("ready",):
            raise SessionError(f"MPC engine failed to start: {hello!r}")

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()

    async def _restart(self) -> None:
        await self._kill()
        self.restarts += 1
        self._on_restart()
        self.start()

    async def run(self, spec: SessionSpec) -> SessionRun:
        """Run one session; raise SessionError with a clear reason on any failure."""
        if self._ready is None:
            self.start()
        self._starting, self._aborted = True, None
        try:
            await self._ready
        except Exception as exc:
            await self._restart()
            raise SessionError(f"MPC engine unavailable: {exc}") from None
        finally:
            self._starting = False
        if self._aborted is not None:  # aborted while the child was starting: nothing ran
            raise SessionError(f"aborted: {self._aborted}")
        proc = self._proc
        budget = spec.connect_timeout + spec.session_timeout + self.GRACE_S
        self._running = True
        try:
            proc.stdin.write(_frame(spec))
            await proc.stdin.drain()
            status, value = await asyncio.wait_for(_read_frame(proc.stdout), budget)
        except asyncio.TimeoutError:
            await self._restart()
            raise SessionError(f"session hung; MPC engine killed after {budget:g}s") from None
        except (asyncio.IncompleteReadError, BrokenPipeError, ConnectionResetError):
            await self._restart()
            if self._aborted is not None:
                raise SessionError(f"aborted: {self._aborted}") from None
            raise SessionError("MPC engine process died during the session") from None
        finally:
            self._running = False
        if status == "ok":
            return value
        await self._restart()
        raise SessionError(value)

    def abort(self, reason: str) -> bool:
        """Stop the session in progress, if any (its `run` raises SessionError naming the
        reason); the engine is replaced.  A session still waiting for the child to start is
        stopped before it begins.  An idle engine is left alone."""
        if self._starting:
            self._aborted = reason
            return True
        if not self._running or self._proc is None or self._proc.returncode is not None:
            return False
        self._aborted = reason
        self._proc.kill()
        return True

    async def close(self) -> None:
        if self._ready is not None:
            if not self._ready.done():
                self._ready.cancel()
            elif not self._ready.cancelled():
                self._ready.exception()  # a child that died starting (e.g. killed with us)
        await self._kill()

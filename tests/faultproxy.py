"""A small TCP fault proxy for tests: forwards 127.0.0.1:listen → target and can add latency,
black-hole traffic (connections stay open, nothing passes; with `silent`, not even a close,
as with a cut cable), or cut every connection.

It runs its own event loop in a daemon thread, so sync and async tests control it alike.
Only loopback addresses are used.
"""

from __future__ import annotations

import asyncio
import threading

from mpc_nodes.deploy.cluster import free_port


class FaultProxy:
    """Forward one local port to a target port, with injectable faults."""

    def __init__(self, target_port: int, listen_port: int | None = None,
                 target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = listen_port or free_port()
        self.delay_s = 0.0
        self.blackhole = False
        self.silent = False  # while black-holed, closes are held back too
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True))
        self._ready.set()
        self._loop.run_forever()

    async def _accept(self, reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)
        self._writers -= {writer, up_writer}

    async def _pipe(self, reader, writer) -> None:
        """Copy one direction, delaying each chunk by the current latency (order kept)."""
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver():
            while (item := await queue.get()) is not None:
                due, data = item
                await asyncio.sleep(max(0.0, due - self._loop.time()))
                writer.write(data)
                await writer.drain()
            writer.close()

        sender = asyncio.ensure_future(deliver())
        try:
            while data := await reader.read(65536):
                if not self.blackhole:
                    queue.put_nowait((self._loop.time() + self.delay_s, data))
        finally:
            while self.blackhole and self.silent:
                await asyncio.sleep(0.05)
            queue.put_nowait(None)
            await asyncio.gather(sender, return_exceptions=True)

    def cut(self) -> None:
        """Abort every open connection (new ones are still accepted)."""
        def abort_all():
            for w in list(self._writers):
                w.transport.abort()
        self._loop.call_soon_threadsafe(abort_all)

    def close(self) -> None:
        def stop():
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            self._loop.stop()
        self._loop.call_soon_threadsafe(stop)
        self._thread.join(5)

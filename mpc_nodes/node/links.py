"""Warm MPC links: an engine keeps its authenticated TLS connections to other engines open
between sessions, and the next session with the same peer reuses one instead of paying a
TLS handshake per job (about a quarter of a signature's time on this machine).

What a fresh connection guarantees holds for a reused one:
- TLS 1.3 with the cluster CA both ways, as before; on every reuse the peer's certificate is
  compared with the session's pinned roster certificate (mpc_nodes.node.session), so a roster
  change that replaced a party's certificate retires its links.
- Every session still opens every link with its session id: the lower session index sends
  the preamble, the other side admits it exactly as on a new connection.
- A link serves one session at a time: between sessions it is idle here, and what arrives on
  it is only buffered until a session in its set-up phase takes it; a session not in set-up
  never sees new links.
- Only links of a session that ended cleanly (an END frame each way after the protocol,
  protocols.mpyc_seam.SessionLinks.finish) come back; a failed session aborts its links and
  its engine process is replaced (mpc_nodes.node.engine), which closes every idle link too.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

log = logging.getLogger("mpcnet.session")


class _Idle(asyncio.Protocol):
    """A connection between sessions (or accepted before its session began): buffers what
    arrives until a session takes it."""

    def __init__(self, pool: "LinkPool", data: bytes = b""):
        self.pool, self.data, self.transport = pool, bytearray(data), None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.pool.idle.append(self)
        self.pool.trim()
        self.pool.offer(self)

    def data_received(self, data) -> None:
        self.data.extend(data)
        if len(self.data) > self.pool.MAX_BUFFERED:  # a caller that talks without a session
            log.warning("closing an idle MPC link: %d bytes arrived before any session took"
                        " it", len(self.data))
            self.transport.close()
            return
        self.pool.offer(self)

    def eof_received(self):
        return False  # close

    def connection_lost(self, exc) -> None:
        if self in self.pool.idle:
            self.pool.idle.remove(self)


def peer_der(transport) -> bytes | None:
    """The DER certificate the other end presented in the TLS handshake."""
    ssl_object = transport.get_extra_info("ssl_object")
    return ssl_object.getpeercert(binary_form=True) if ssl_object else None


class LinkPool:
    """An engine's idle links and its listening socket, shared by its sessions (one at a time)."""

    MAX_IDLE = 32  # more than any roster's peers; the oldest idle link goes first
    MAX_BUFFERED = 1 << 21  # what an idle link holds for the next session: its preamble and
    # the peer's first round, sent before this party's session began; the largest is checked
    # pricing's dealing, 2,500 options x 37 values x 4 bytes = 370 KB per peer with Greeks
    # (64 KiB closed the links of a malicious price job of 500 options); more is a flood

    def __init__(self):
        self.idle: list[_Idle] = []
        self.server: asyncio.AbstractServer | None = None
        self.bound: tuple | None = None
        self.setup = None  # the session in its set-up phase, which takes callers' links

    async def listen(self, host: str, port: int, context: ssl.SSLContext) -> None:
        """Accept connections at host:port from now on (kept across sessions)."""
        if self.bound == (host, port, id(context)):
            return
        if self.server is not None:
            self.server.close()
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Idle(self), host, port, ssl=context,
                                               reuse_address=True)
        self.bound = (host, port, id(context))

    def take(self, cert_der: bytes) -> asyncio.Transport | None:
        """An idle link to the peer with this certificate, on which it has sent nothing (we
        are the one to open the next session on it), or None."""
        for idle in self.idle:
            transport = idle.transport
            if not idle.data and not transport.is_closing() and peer_der(transport) == cert_der:
                self.idle.remove(idle)
                return transport
        return None

    def begin_setup(self, session) -> None:
        """`session` takes, from now until `end_setup`, every link whose caller speaks."""
        self.setup = session
        for idle in list(self.idle):
            self.offer(idle)

    def end_setup(self) -> None:
        self.setup = None

    def offer(self, idle: _Idle) -> None:
        """Hand a link whose caller sent bytes (its preamble) to the session in set-up; it
        admits or refuses it as any new connection."""
        if self.setup is None or not idle.data or idle not in self.idle:
            return
        self.idle.remove(idle)
        link = self.setup.links.listener()
        idle.transport.set_protocol(link)
        link.connection_made(idle.transport)
        if not idle.transport.is_closing():
            link.data_received(bytes(idle.data))

    def keep(self, transport, after: bytes) -> None:
        """Take back the link of a session that ended cleanly, with what came after the peer's
        END (the next session's preamble, if the peer is already there)."""
        idle = _Idle(self, after)
        transport.set_protocol(idle)
        idle.connection_made(transport)

    def trim(self) -> None:
        while len(self.idle) > self.MAX_IDLE:
            self.idle.pop(0).transport.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for idle in self.idle:
            idle.transport.close()
        self.idle.clear()

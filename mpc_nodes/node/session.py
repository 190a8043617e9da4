"""One MPyC session among the participating parties, over mutually authenticated TLS.

MPyC's own ``Runtime.start`` reads certificates from fixed paths and trusts any peer that
dials in.  Here each connection is TLS 1.3 with certificates from the cluster CA, the dialled
peer is checked by name, the accepting side checks the caller's certificate names the
session party it claims to be, and every connection opens with the session id (a digest of
the job request and the participant set), so parties of different jobs never mix.
A lost connection before shutdown fails the session at once instead of hanging.  A party
whose session fails first tells its connected peers why (a GOODBYE frame), so that they name
the cause ("party0 stopped: lost connection to party1") rather than the messenger; a session
that does not finish names the peers it waits for and how long each has been silent.
In the engine, connections outlive sessions (mpc_nodes.node.links): each session still opens
every link with its session id, and gives the links back only after a clean end.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from mpc_nodes.node.links import LinkPool, peer_der
from mpc_nodes.node.mpyc_runtime import PartyAddress, new_runtime
from mpc_nodes.pki import cert_common_name, client_context, server_context

log = logging.getLogger("mpcnet.session")
ProtocolFunction = Callable[..., Awaitable[Any]]
"""`async def f(rt, *args)` of a module under protocols/ (docs/ARCHITECTURE.md, "Protocol
convention"); the engine's child process receives the function itself, pickled by reference."""


class SessionError(RuntimeError):
    """The session failed; the message names the party or step that failed."""


@dataclass(frozen=True)
class SessionPeer:
    """A session party: its name, MPC address, and its roster certificate (pinned)."""

    name: str
    host: str
    port: int
    cert_pem: str

    @functools.cached_property
    def cert_der(self) -> bytes:
        return ssl.PEM_cert_to_DER_cert(self.cert_pem)


@dataclass(frozen=True)
class SessionSpec:
    """Everything one party needs to run a protocol in a session."""

    session_id: str  # hex, 32 bytes
    my_pid: int
    peers: list[SessionPeer]  # all session parties in session order, including this one
    bind_host: str
    bind_port: int  # usually the roster port; differs behind a port mapping or proxy
    tls_cert: str
    tls_key: str
    tls_passphrase: bytes
    ca_pem: str
    protocol: ProtocolFunction
    args: list = field(default_factory=list)
    threshold: int | None = None  # MPyC threshold; None: (m-1)//2
    connect_timeout: float = 10.0
    session_timeout: float = 60.0


@dataclass(frozen=True)
class SessionRun:
    """What a session produced: the protocol's result, set-up time and protocol time, and
    how many of the links this party opens came warm from an earlier session."""

    output: Any
    connect_s: float
    mpc_s: float
    warm_links: int = 0


def _checked_protocol(protocol: ProtocolFunction) -> ProtocolFunction:
    """The engine runs only protocols: async functions of a module under protocols/."""
    if not (getattr(protocol, "__module__", None) or "").startswith("protocols.") \
            or not inspect.iscoroutinefunction(protocol):
        raise SessionError(f"refusing to run {protocol!r}: a protocol is an async function"
                           f" of a protocols.<module>")
    return protocol


class _Session:
    """Connection bookkeeping for one session: who is connected, and whether it failed.  It
    is the policy of the session's links (protocols.mpyc_seam.LinkPolicy): which connections
    are admitted, and what a lost or stopped peer means."""

    def __init__(self, spec: SessionSpec, rt, loop):
        from protocols.mpyc_seam import SessionLinks  # not at import: the daemon imports

        # this module, and importing MPyC configures logging; only the engine runs sessions

        self.spec = spec
        self.rt = rt
        self.links = SessionLinks(rt, self)
        self.preamble = bytes.fromhex(spec.session_id)
        self.closing = False
        self.failed = loop.create_future()
        self.transports: list = []
        self.started = time.monotonic()
        self.heard: dict[int, float] = {}  # peer pid -> monotonic time of its last bytes
        self.warm_links = 0  # links we opened on a connection kept from an earlier session

    def fail(self, reason: str) -> None:
        if not self.failed.done():
            self.failed.set_exception(SessionError(reason))

    def name(self, pid: int) -> str:
        return self.spec.peers[pid].name

    def goodbye(self, reason: str) -> None:
        """Tell every connected peer why we stop (best effort), so it names the cause."""
        self.links.goodbye(reason)

    def missing(self, exclude: int | None = None) -> list[str]:
        """Session parties with no connection yet."""
        return [self.name(pid) for pid in self.links.peers()
                if pid != exclude and self.links.link(pid) is None]

    def stalled(self) -> str:
        """Whom the protocol waits for, and since when we heard from them: for a session that
        does not finish, this names the silent link (a cut that drops without closing)."""
        now, me, waits = time.monotonic(), self.name(self.rt.pid), []
        for pid in self.links.peers():
            link = self.links.link(pid)
            if link is not None and link.awaits_message():
                silent = now - self.heard.get(pid, self.started)
                waits.append(f"no message from {self.name(pid)} for {silent:.1f} s"
                             f" (link {me}↔{self.name(pid)})")
        return "; ".join(waits) or "waiting on no party: still computing"

    # -- the links' policy --

    def accept(self, transport, pid: int | None) -> bool:
        """Keep every transport (to close it at the end); a peer we dialled must present its
        roster certificate."""
        self.transports.append(transport)
        if pid is not None and peer_der(transport) != self.spec.peers[pid].cert_der:
            self.fail(f"{self.name(pid)} presented a certificate other than its roster"
                      " certificate")
            return False
        return True

    def admit(self, preamble: bytes, pid: int, transport) -> bool:
        """A caller must send our session id, claim a lower index than ours (lower dials
        higher) and present that party's roster certificate, once."""
        cn = cert_common_name(transport.get_extra_info("peercert") or {})
        problem = None
        if preamble != self.preamble:
            problem = f"{cn} connected for another session; ignored"
        elif not 0 <= pid < self.rt.pid:
            problem = f"{cn} claimed session index {pid}, which must dial us; ignored"
        elif peer_der(transport) != self.spec.peers[pid].cert_der:
            problem = (f"certificate {cn!r} is not the roster certificate of session party"
                       f" {self.name(pid)}")
        elif self.links.link(pid) is not None:
            problem = f"{cn} connected twice; ignored"
        if problem:
            log.warning("session %s: %s", self.spec.session_id[:12], problem)
            return False
        return True

    def heard_from(self, pid: int) -> None:
        self.heard[pid] = time.monotonic()

    def stopped(self, pid: int, reason: str) -> None:
        self.fail(f"{self.name(pid)} stopped: {reason}")

    def lost(self, pid: int, exc: Exception | None, during_setup: bool) -> None:
        name, reason = self.name(pid), f" ({exc})" if exc else ""
        if not during_setup:
            self.fail(f"lost connection to {name} mid-session (it stopped, or rejected our"
                      f" session id){reason}")
            return
        missing = self.missing(exclude=pid)
        if missing:  # most likely it gave up waiting for them, as we would
            self.fail(f"{', '.join(missing)} never connected during set-up; {name}, which had,"
                      f" then left{reason}")
        else:
            self.fail(f"{name} left during set-up (it stopped, is in another session, or"
                      f" rejected us){reason}")


@functools.lru_cache(maxsize=4)
def _tls_contexts(cert: str, key: str, passphrase: bytes, ca_pem: str):
    """Server and client contexts, built once per engine process (decrypting the key is slow)."""
    return (server_context(cert, key, passphrase, ca_pem),
            client_context(cert, key, passphrase, ca_pem))


async def _connect(session: _Session, pool: LinkPool | None) -> None:
    spec, rt, loop = session.spec, session.rt, asyncio.get_running_loop()
    server_ctx, client_ctx = _tls_contexts(spec.tls_cert, spec.tls_key, spec.tls_passphrase,
                                           spec.ca_pem)
    all_linked = session.links.open()
    server = None
    if pool is not None:  # callers' links, warm or new, come through the pool
        await pool.listen(spec.bind_host, spec.bind_port, server_ctx)
        pool.begin_setup(session)
    elif rt.pid > 0:
        server = await loop.create_server(session.links.listener, spec.bind_host,
                                          spec.bind_port, ssl=server_ctx,
                                          reuse_address=True)

    async def dial(pid: int) -> None:
        """Open the session on a warm link to the peer, or dial until the peer listens: it
        may still be finishing its previous job."""
        peer, pause = spec.peers[pid], 0.001
        warm = pool.take(peer.cert_der) if pool is not None else None
        if warm is not None:
            link = session.links.dialler(pid)
            warm.set_protocol(link)
            link.connection_made(warm)  # checks the pinned certificate, sends the preamble
            session.warm_links += 1
            return
        while True:
            try:
                await loop.create_connection(lambda: session.links.dialler(pid), peer.host,
                                             peer.port, ssl=client_ctx, server_hostname=peer.name)
                return
            except (OSError, asyncio.TimeoutError) as exc:
                log.debug("dial %s: %s", peer.name, exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)

    dials = [asyncio.ensure_future(dial(pid)) for pid in range(rt.pid + 1, len(spec.peers))]
    try:
        await asyncio.gather(*dials)  # never cancel a dial mid-handshake: it would drop the link
        await all_linked
    finally:
        for d in dials:
            d.cancel()
        if server is not None:
            server.close()
        if pool is not None:
            pool.end_setup()


async def _end_warm(session: _Session, pool: LinkPool, timeout: float) -> None:
    """End the session on every link and give the links back to the pool; a link whose
    peer does not end in time is closed instead (the result stands either way)."""
    try:
        await asyncio.wait_for(session.links.finish(), timeout)
    except Exception as exc:  # noqa: BLE001 - a lost peer: its link closes, nothing to keep
        log.warning("session %s: end of session incomplete (%s: %s); result kept, links"
                    " closed", session.spec.session_id[:12], type(exc).__name__, exc)
        return
    for pid in session.links.peers():
        transport, after = session.links.link(pid).detach()
        session.transports.remove(transport)
        pool.keep(transport, after)


async def run_session(spec: SessionSpec, pool: LinkPool | None = None) -> SessionRun:
    """Connect, run the protocol, shut down; raise SessionError on failure.  With a pool
    (the engine's), links are taken from it and given back after a clean end."""
    protocol = _checked_protocol(spec.protocol)
    loop = asyncio.get_running_loop()
    addresses = [PartyAddress(p.host, p.port) for p in spec.peers]
    rt = new_runtime(spec.my_pid, addresses, spec.threshold)
    session = _Session(spec, rt, loop)
    started = time.monotonic()
    deadline = started + spec.session_timeout
    task, said_goodbye = None, False
    try:
        if len(spec.peers) > 1:
            connect = asyncio.ensure_future(_connect(session, pool))
            done, _ = await asyncio.wait({connect, session.failed}, timeout=spec.connect_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            if connect not in done:
                connect.cancel()
                await asyncio.gather(connect, return_exceptions=True)
                if session.failed.done():
                    session.failed.result()
                missing = session.missing()
                raise SessionError(f"could not connect to {', '.join(missing) or 'all parties'}"
                                   f" within {spec.connect_timeout:g}s")
            connect.result()
        session.links.mark_started()
        connected = time.monotonic()
        log.info("session %s: connected to %s", spec.session_id[:12],
                 ", ".join(p.name for p in spec.peers))
        task = asyncio.ensure_future(protocol(rt, *spec.args))
        done, _ = await asyncio.wait({task, session.failed},
                                     timeout=max(0.0, deadline - time.monotonic()),
                                     return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            if session.failed.done():
                session.failed.result()
            raise SessionError(f"protocol did not finish within {spec.session_timeout:g}s:"
                               f" {session.stalled()}")
        result = task.result()
        session.closing = True
        mpc_done = time.monotonic()
        closing_s = max(1.0, deadline - time.monotonic())
        if pool is not None and len(spec.peers) > 1:
            await _end_warm(session, pool, closing_s)
        else:
            try:  # the outputs are already opened to everyone: the result stands either way
                await asyncio.wait_for(rt.shutdown(), timeout=closing_s)
            except Exception as exc:  # noqa: BLE001 - MPyC raises assorted errors on a lost peer
                log.warning("session %s: closing handshake incomplete (%s: %s); result kept",
                            spec.session_id[:12], type(exc).__name__, exc)
        return SessionRun(result, connected - started, mpc_done - connected,
                          session.warm_links)
    except Exception as exc:
        session.goodbye(str(exc))
        said_goodbye = True  # close, not abort: the goodbyes go out first
        raise
    finally:
        if task is not None and not task.done():
            task.cancel()
        # a failed session does not set `closing`: its links, lost now, report to a session
        # that already failed (a no-op), where a closing one would hand them to MPyC's
        # shutdown bookkeeping, which no one awaits after a failure (and which raised
        # InvalidStateError in the event loop when the last link went)
        for transport in session.transports:
            transport.close() if session.closing or said_goodbye else transport.abort()
        if not session.failed.done():
            session.failed.cancel()
        elif not session.failed.cancelled():
            session.failed.exception()  # the protocol's own error may have been raised instead
        if said_goodbye:
            _quiet_stale_results(loop)


def _quiet_stale_results(loop) -> None:
    """After a failed session: its protocol task was cancelled and its links closed, but MPyC
    coroutines it had started run on until they end, in this event loop.  One whose messages
    had arrived finds the future it was to fill cancelled (InvalidStateError); one that sends
    writes to a closed link (AttributeError from asyncio's SSL transport).  MPyC reports
    either from a task's done-callback as "Unhandled exception in event loop", with a
    traceback.  Both are harmless: nothing awaits those results, and the engine is replaced
    after a failed session anyway (``MpcEngine.run``).  So, until the next session's runtime
    installs its own handler, errors raised in callbacks are logged at debug level only."""
    handler = loop.get_exception_handler()

    def handle(loop, context):
        if "handle" in context or isinstance(context.get("exception"),
                                             asyncio.InvalidStateError):
            log.debug("after a failed session: %s: %r", context.get("message"),
                      context.get("exception"))
        elif handler is not None:
            handler(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)

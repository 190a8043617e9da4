"""MQTT bus client: stays connected (reconnecting with backoff), resubscribes, and publishes
with retries so that a vote or result is not lost to a broker blip.

A link can die silently (a cut that drops packets without closing the connection): a short
MQTT keep-alive (nodes use NODE_KEEPALIVE_S) makes the broker drop a silent client, and send
its will, after 1.5 keep-alives, and the client drop an unanswered connection after about 2.

A connection can be up and still deliver nothing (a broker that dropped the subscriptions,
an ACL that denies reading): with a heartbeat topic, the client publishes a nonce there
every few seconds and expects it back; two probes in a row unanswered mean the bus is deaf,
and the client says so (`deaf`, `on_hearing`) and reconnects to subscribe afresh.

Every connection attempt has a number (`attempt`, increasing for the life of the object);
the will may be a function of it, so that a late will can be told from a newer announcement.

Messages are handed to one handler coroutine in arrival order; the handler must not raise
(anything it raises is logged and the message dropped, never the connection).
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import ssl
from collections.abc import Awaitable, Callable

import aiomqtt

from mpc_nodes.config import parse_broker_url
from mpc_nodes.errors import UserError

log = logging.getLogger("mpcnet.bus")
_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]  # no 40 ms Nagle stalls
Handler = Callable[[str, bytes], Awaitable[None]]
Will = tuple[str, bytes] | Callable[[int], tuple[str, bytes]]
NODE_KEEPALIVE_S = 3  # a node's presence must follow a silent cut within seconds


class BusUnavailable(UserError, ConnectionError):
    """The broker could not be reached in time."""


class _Deaf(Exception):
    """Our own heartbeat did not come back: reconnect."""


class Bus:
    """One long-lived MQTT connection with a Last Will, subscriptions and an on-connect hook."""

    def __init__(self, url: str, client_id: str, tls: ssl.SSLContext | None,
                 subscriptions: list[str], handler: Handler,
                 will: Will | None = None,
                 on_connect: Callable[[], Awaitable[None]] | None = None,
                 keepalive: int = 10, heartbeat: str | None = None,
                 on_hearing: Callable[[bool], Awaitable[None]] | None = None,
                 heartbeat_interval: float = 2.0, heartbeat_timeout: float = 3.0):
        self.tls_required, self.host, self.port = parse_broker_url(url)
        if self.tls_required and tls is None:
            raise ValueError(f"{url} needs TLS: give the broker CA")
        self.url = url
        self._client_id = client_id
        self._tls = tls if self.tls_required else None
        self._subscriptions = subscriptions
        self._handler = handler
        self._will = will
        self._on_connect = on_connect
        self._keepalive = keepalive
        self._client: aiomqtt.Client | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.attempt = 0  # number of the current (or last) connection attempt
        self.last_error: str | None = None
        self._heartbeat = heartbeat
        self._on_hearing = on_hearing
        self._hb_interval, self._hb_timeout = heartbeat_interval, heartbeat_timeout
        self._hb_waiting: tuple[bytes, asyncio.Event] | None = None
        self.deaf = False  # set while our own heartbeat does not come back

    async def run(self) -> None:
        """Connect and dispatch messages forever, reconnecting with jittered backoff."""
        delay = 0.2
        while True:
            self.attempt += 1
            topic_payload = self._will(self.attempt) if callable(self._will) else self._will
            will = (aiomqtt.Will(*topic_payload, qos=1, retain=True) if topic_payload else None)
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self._client_id,
                                          tls_context=self._tls, will=will, clean_session=True,
                                          keepalive=self._keepalive, timeout=10,
                                          socket_options=_NODELAY) as client:
                    self._client = client
                    for topic in self._subscriptions + ([self._heartbeat] if self._heartbeat
                                                        else []):
                        await client.subscribe(topic, qos=1)
                    self.connects += 1
                    self.connected.set()
                    delay = 0.2
                    log.info("connected to %s (connection %d)", self.url, self.connects)
                    if self._on_connect:
                        await self._on_connect()
                    await self._serve(client)
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
                log.warning("broker %s: %s; retrying in %.1fs", self.url, exc, delay)
            except _Deaf as exc:
                self.last_error = str(exc)
                log.error("broker %s: %s; reconnecting", self.url, exc)
            finally:
                self.connected.clear()
                self._client = None
            await asyncio.sleep(delay * (0.75 + random.random() / 2))
            delay = min(delay * 2, 5.0)

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Dispatch messages until the connection fails or the heartbeat finds it deaf."""
        tasks = [asyncio.ensure_future(self._read(client))]
        if self._heartbeat:
            tasks.append(asyncio.ensure_future(self._beat(client)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            t.result()

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            topic, payload = str(message.topic), bytes(message.payload)
            if topic == self._heartbeat:
                if self._hb_waiting and payload == self._hb_waiting[0]:
                    self._hb_waiting[1].set()
                continue
            await self._dispatch(topic, payload)

    async def _beat(self, client: aiomqtt.Client) -> None:
        """Probe every few seconds; two probes in a row unanswered: deaf (raise _Deaf)."""
        missed = 0
        while True:
            nonce, heard = secrets.token_hex(8).encode(), asyncio.Event()
            self._hb_waiting = (nonce, heard)

            async def probe():
                await client.publish(self._heartbeat, nonce, qos=1)
                await heard.wait()
            try:
                await asyncio.wait_for(probe(), self._hb_timeout)
                missed = 0
                await self._set_deaf(False)
                await asyncio.sleep(self._hb_interval)
            except asyncio.TimeoutError:
                missed += 1
                if missed >= 2:
                    await self._set_deaf(True)
                    raise _Deaf(f"deaf: connected, but our own heartbeat on {self._heartbeat}"
                                f" did not come back ({missed} probes, {self._hb_timeout:g}s"
                                " each); subscriptions lost?") from None

    async def _set_deaf(self, deaf: bool) -> None:
        if deaf == self.deaf:
            return
        self.deaf = deaf
        if not deaf:
            log.info("broker %s: hearing our own heartbeat again", self.url)
        if self._on_hearing:  # in the background: a dead link must not delay the reconnect
            task = asyncio.ensure_future(self._on_hearing(not deaf))
            task.add_done_callback(_log_failure)

    async def _dispatch(self, topic: str, payload: bytes) -> None:
        try:
            await self._handler(topic, payload)
        except Exception:  # a bad message must never take the connection down
            log.exception("handler failed on a message on %s", topic)

    async def publish(self, topic: str, payload: bytes, retain: bool = False,
                      timeout: float = 30.0) -> None:
        """Publish at QoS 1, waiting for a connection and retrying until `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BusUnavailable(f"could not publish to {topic} via {self.url} within"
                                     f" {timeout:g}s: {self.last_error or 'not connected'}")
            try:
                await asyncio.wait_for(self.connected.wait(), remaining)
                await asyncio.wait_for(self._client.publish(topic, payload, qos=1, retain=retain),
                                       max(0.1, deadline - loop.time()))
                return
            except (aiomqtt.MqttError, AttributeError, asyncio.TimeoutError) as exc:
                self.last_error = self.last_error or str(exc)
                await asyncio.sleep(0.1)

    async def wait_connected(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except asyncio.TimeoutError:
            raise BusUnavailable(f"no connection to the broker at {self.url} after {timeout:g}s:"
                                 f" {self.last_error or 'no answer'}") from None


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("on_hearing hook failed: %r", task.exception())

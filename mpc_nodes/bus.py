"""MQTT bus client: stays connected (reconnecting with backoff), resubscribes, and publishes
with retries so that a vote or result is not lost to a broker blip.

Messages are handed to one handler coroutine in arrival order; the handler must not raise
(anything it raises is logged and the message dropped, never the connection).
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
from collections.abc import Awaitable, Callable

import aiomqtt

from .config import parse_broker_url

log = logging.getLogger("mpcnet.bus")
_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]  # no 40 ms Nagle stalls
Handler = Callable[[str, bytes], Awaitable[None]]


class BusUnavailable(ConnectionError):
    """The broker could not be reached in time."""


class Bus:
    """One long-lived MQTT connection with a Last Will, subscriptions and an on-connect hook."""

    def __init__(self, url: str, client_id: str, tls: ssl.SSLContext | None,
                 subscriptions: list[str], handler: Handler,
                 will: tuple[str, bytes] | None = None,
                 on_connect: Callable[[], Awaitable[None]] | None = None,
                 keepalive: int = 10):
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
        self.last_error: str | None = None

    async def run(self) -> None:
        """Connect and dispatch messages forever, reconnecting with jittered backoff."""
        delay = 0.2
        while True:
            will = (aiomqtt.Will(self._will[0], self._will[1], qos=1, retain=True)
                    if self._will else None)
            try:
                async with aiomqtt.Client(self.host, self.port, identifier=self._client_id,
                                          tls_context=self._tls, will=will, clean_session=True,
                                          keepalive=self._keepalive, timeout=10,
                                          socket_options=_NODELAY) as client:
                    self._client = client
                    for topic in self._subscriptions:
                        await client.subscribe(topic, qos=1)
                    self.connects += 1
                    self.connected.set()
                    delay = 0.2
                    log.info("connected to %s (connection %d)", self.url, self.connects)
                    if self._on_connect:
                        await self._on_connect()
                    async for message in client.messages:
                        await self._dispatch(str(message.topic), bytes(message.payload))
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc)
                log.warning("broker %s: %s; retrying in %.1fs", self.url, exc, delay)
            finally:
                self.connected.clear()
                self._client = None
            await asyncio.sleep(delay * (0.75 + random.random() / 2))
            delay = min(delay * 2, 5.0)

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

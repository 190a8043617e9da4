"""The embedded MQTT broker (amqtt) for local clusters: TLS with the cluster's broker cert.

Authenticity of every message comes from the signed envelopes, not from the broker; TLS
keeps job parameters and results confidential on the wire.  Production clusters use
Mosquitto (see docs/OPERATOR.md).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from amqtt.broker import Broker
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.utils import gen_client_id

from mpc_nodes.wire import client_ids
from mpc_nodes.wire.broker_acl import ClusterAcl, certificate_name

log = logging.getLogger("mpcnet.broker")


def broker_config(host: str, port: int, cert: Path | None, key: Path | None,
                  ca: Path | None, acl: dict | None) -> dict:
    """amqtt configuration: one listener, TLS when cert and key are given.  With `acl`
    ({"cluster", "parties", "coordinators"}) clients must log in with a cluster certificate
    and may publish only their own topics (mpc_nodes.wire.broker_acl); without it (plain local
    development) any client may connect."""
    listener = {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 256}
    if cert is not None:
        listener.update({"ssl": True, "certfile": str(cert), "keyfile": str(key),
                         "cafile": str(ca)})
    plugins = ({"mpc_nodes.wire.broker_acl.CertificateAuth": acl, "mpc_nodes.wire.broker_acl.TopicAcl": acl}
               if acl else
               {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}})
    return {"listeners": {"default": listener}, "timeout_disconnect_delay": 0, "plugins": plugins}


KEEPALIVE_FACTOR = 1.5  # MQTT 3.1.1 §3.1.2.10: a client silent this many keep-alives is gone


class _KeepaliveHandler(BrokerProtocolHandler):
    """amqtt notices a client's silence (its read times out after the keep-alive) and then
    does nothing, so a silently cut client stayed connected, and its will unsent, until TCP
    itself gave up.  Here the silence ends the connection, which sends the client's will."""

    def handle_read_timeout(self) -> None:
        session = self.session
        log.warning("MQTT client %s silent for %gs (%g x its keep-alive): closing its"
                    " connection", session.client_id if session else "?",
                    session.keep_alive if session else 0, KEEPALIVE_FACTOR)
        asyncio.ensure_future(self.handle_connection_closed())


class ClusterBroker(Broker):
    """amqtt with keep-alives enforced, retained messages delivered only on a client's own
    subscriptions, and (with `acl`) client ids bound to certificates (mpc_nodes.wire.client_ids).

    amqtt, on every connect, sends the new client the retained messages matching any
    subscription of ANY client (it loops over the broker-wide subscription table): a node
    that subscribes to the jobs topic was handed every other party's retained presence and
    results, which it logged as rejected.  Here a retained message goes only to a session
    that holds the subscription it matches.

    amqtt drops the existing session of a clean-session CONNECT's client id before it
    authenticates anyone, and leaves the old connection open without its subscriptions: a
    roster member claiming another's id made that party deaf while it looked connected.
    Here the CONNECT is checked against the certificate first; a refused client touches no
    session, and a client that reconnects under its own id closes its stale connection
    without its will (presence carries the connection order, so a late will loses anyway)."""

    def __init__(self, config: dict, acl: dict | None = None, **kw):
        super().__init__(config, **kw)
        self._acl = acl

    async def revise(self, acl: dict) -> list[str]:
        """Run with a new roster's identities at once: a certificate it no longer lists may
        neither log in, publish nor receive from now on, and its connections are closed
        (their wills sent).  Return the names closed."""
        self._acl = acl
        for plugin in self.plugins_manager.plugins:
            if isinstance(getattr(plugin, "config", None), ClusterAcl):
                plugin.config.parties = list(acl["parties"])
                plugin.config.coordinators = list(acl["coordinators"])
        members, closed = {*acl["parties"], *acl["coordinators"]}, []
        for client_id, (session, handler) in list(self._sessions.items()):
            name = certificate_name(session)
            if name not in members:
                if handler is not None and session.transitions.is_connected():
                    await handler.handle_connection_closed()
                    await handler.stop()
                await self._delete_session(client_id)
                closed.append(name)
        return closed

    async def _initialize_client_session(self, reader, writer, remote_address, remote_port):
        try:
            handler, session = await _KeepaliveHandler.init_from_connect(
                reader, writer, self.plugins_manager)
        except (AMQTTError, MQTTError, NoDataError):
            await writer.close()
            raise
        reason = ("persistent sessions are not used" if not session.clean_session else
                  None if self._acl is None else
                  client_ids.refusal(self._acl["cluster"], self._acl["parties"],
                                     self._acl["coordinators"], certificate_name(session),
                                     session.client_id))
        if reason:
            log.warning("refused MQTT client %r (certificate %r) from %s: %s",
                        session.client_id, certificate_name(session), remote_address, reason)
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise MQTTError(reason)
        if not session.client_id:
            session.client_id = gen_client_id()
        old, old_handler = self._sessions.get(session.client_id, (None, None))
        if old is not None:  # the same identity again: its old connection is stale
            old.will_flag = False  # it is back: no "offline" will after its new "online"
            if old.transitions.is_connected() and old_handler is not None:
                await old_handler.handle_connection_closed()
                await old_handler.stop()
            await self._delete_session(session.client_id)
        session.parent = 0
        if session.keep_alive > 0:
            session.keep_alive *= KEEPALIVE_FACTOR
        return handler, session

    async def _publish_retained_messages_for_subscription(self, subscription, session) -> None:
        if any(s is session for s, _ in self._subscriptions.get(subscription[0], ())):
            await super()._publish_retained_messages_for_subscription(subscription, session)


class EmbeddedBroker:
    """Start and stop an in-process amqtt broker."""

    def __init__(self, host: str, port: int, cert: Path | None = None, key: Path | None = None,
                 ca: Path | None = None, acl: dict | None = None):
        self.url = f"{'mqtts' if cert else 'mqtt'}://{host}:{port}"
        self._config = broker_config(host, port, cert, key, ca, acl)
        self._acl = acl
        self._broker: Broker | None = None

    async def start(self) -> None:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        loop = asyncio.get_running_loop()
        self._broker = ClusterBroker(self._config, self._acl, loop=loop)
        await self._broker.start()

    async def revise(self, acl: dict) -> list[str]:
        """Take a new roster's identities without a restart (ClusterBroker.revise); a new
        member's certificate needs a restart (TLS pins the certificates it started with)."""
        return await self._broker.revise(acl)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

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

from . import client_ids
from .broker_acl import certificate_name

log = logging.getLogger("mpcnet.broker")


def broker_config(host: str, port: int, cert: Path | None, key: Path | None,
                  ca: Path | None, acl: dict | None) -> dict:
    """amqtt configuration: one listener, TLS when cert and key are given.  With `acl`
    ({"cluster", "parties", "coordinators"}) clients must log in with a cluster certificate
    and may publish only their own topics (mpc_nodes.broker_acl); without it (plain local
    development) any client may connect."""
    listener = {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 256}
    if cert is not None:
        listener.update({"ssl": True, "certfile": str(cert), "keyfile": str(key),
                         "cafile": str(ca)})
    plugins = ({"mpc_nodes.broker_acl.CertificateAuth": acl, "mpc_nodes.broker_acl.TopicAcl": acl}
               if acl else
               {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}})
    return {"listeners": {"default": listener}, "timeout_disconnect_delay": 0, "plugins": plugins}


class IdentityBoundBroker(Broker):
    """amqtt with client ids bound to certificates (mpc_nodes.client_ids).

    amqtt drops the existing session of a clean-session CONNECT's client id before it
    authenticates anyone, and leaves the old connection open without its subscriptions: a
    roster member claiming another's id made that party deaf while it looked connected.
    Here the CONNECT is checked against the certificate first; a refused client touches no
    session, and a client that reconnects under its own id closes its stale connection."""

    def __init__(self, config: dict, acl: dict, **kw):
        super().__init__(config, **kw)
        self._acl = acl

    async def _initialize_client_session(self, reader, writer, remote_address, remote_port):
        try:
            handler, session = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager)
        except (AMQTTError, MQTTError, NoDataError):
            await writer.close()
            raise
        name = certificate_name(session)
        reason = ("persistent sessions are not used" if not session.clean_session else
                  client_ids.refusal(self._acl["cluster"], self._acl["parties"],
                                     self._acl["coordinators"], name, session.client_id))
        if reason:
            log.warning("refused MQTT client %r (certificate %r) from %s: %s",
                        session.client_id, name, remote_address, reason)
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise MQTTError(reason)
        old, old_handler = self._sessions.get(session.client_id, (None, None))
        if old is not None:  # the same identity again: its old connection is stale
            old.will_flag = False  # it is back: no "offline" will after its new "online"
            if old.transitions.is_connected() and old_handler is not None:
                await old_handler.handle_connection_closed()
                await old_handler.stop()
            await self._delete_session(session.client_id)
        session.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return handler, session


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
        self._broker = (IdentityBoundBroker(self._config, self._acl, loop=loop) if self._acl
                        else Broker(self._config, loop=loop))
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

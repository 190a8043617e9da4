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


class EmbeddedBroker:
    """Start and stop an in-process amqtt broker."""

    def __init__(self, host: str, port: int, cert: Path | None = None, key: Path | None = None,
                 ca: Path | None = None, acl: dict | None = None):
        self.url = f"{'mqtts' if cert else 'mqtt'}://{host}:{port}"
        self._config = broker_config(host, port, cert, key, ca, acl)
        self._broker: Broker | None = None

    async def start(self) -> None:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self._broker = Broker(self._config, loop=asyncio.get_running_loop())
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None

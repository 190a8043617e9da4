"""amqtt plugins that give the embedded broker the same rules as the Mosquitto deployment:
clients log in with a cluster certificate, and the certificate's common name decides what
they may publish (and, in mpc_nodes.wire.broker, under which client id they may connect).

- a party (CN = its roster name) publishes only under ``mpcnet/<cluster>/nodes/<name>/``;
- a coordinator publishes only to ``mpcnet/<cluster>/jobs``;
- both may subscribe to and receive ``mpcnet/<cluster>/#``; nothing else is allowed.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session
from cryptography import x509
from cryptography.x509.oid import NameOID

from mpc_nodes.wire import topics

log = logging.getLogger("mpcnet.broker")


def certificate_name(session: Session | None) -> str | None:
    """The CN of the client certificate a session presented (verified by TLS), or None."""
    ssl_object = getattr(session, "ssl_object", None)
    der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    return _common_name(der) if der else None


@functools.lru_cache(maxsize=256)
def _common_name(der: bytes) -> str | None:
    """A certificate's CN (parsed once per certificate: the ACL asks for every message a
    client sends or receives, ~20 per signature)."""
    names = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(
        NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


@dataclass
class ClusterAcl:
    cluster: str
    parties: list[str] = field(default_factory=list)
    coordinators: list[str] = field(default_factory=list)


class CertificateAuth(BaseAuthPlugin):
    """Admit only clients whose certificate names a roster party or coordinator."""

    Config = ClusterAcl

    async def authenticate(self, *, session: Session) -> bool | None:
        name = certificate_name(session)
        ok = name is not None and (name in self.config.parties or name in self.config.coordinators)
        if not ok:
            log.warning("refused MQTT client %s: certificate %r is not in the roster",
                        session.client_id, name)
        return ok


class TopicAcl(BaseTopicPlugin):
    """Per-identity topic rules (see the module docstring)."""

    Config = ClusterAcl

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool | None:
        name, cluster = certificate_name(session), self.config.cluster
        if not topic or (name not in self.config.parties and name not in self.config.coordinators):
            return False  # no certificate, or one the roster no longer lists (ClusterBroker.revise)
        if action in (Action.SUBSCRIBE, Action.RECEIVE):
            return topic == f"{topics.PREFIX}/{cluster}" or topic.startswith(
                f"{topics.PREFIX}/{cluster}/")
        if name in self.config.parties:
            allowed = topic.startswith(f"{topics.PREFIX}/{cluster}/nodes/{name}/")
        else:
            allowed = name in self.config.coordinators and topic == topics.jobs(cluster)
        if not allowed:
            log.warning("denied %s publishing to %s", name, topic)
        return allowed

"""An operator makes its own secrets and joins with a signed bundle of their public parts.

`create_operator` runs on the operator's own machine: it writes the Ed25519 identity key,
the TLS key (both encrypted under the operator's passphrase, which the caller supplies and
which is never written here) and a self-signed TLS certificate, and returns a JoinBundle: the
public parts (name, role, identity key, certificate, MPC endpoint) signed by the new identity
key.  `assemble` builds a first roster from bundles; mpc_nodes.governance decides whether
the operators' signatures make it valid.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID
from pydantic import Field, ValidationError

from mpc_nodes import pki
from mpc_nodes.config import (ConfigError, CoordinatorInfo, Hex32, Limits, Name, PartyInfo, Roster,
                              dump_yaml, load_yaml_model, validation_problems)
from mpc_nodes.models import StrictModel

DOMAIN = b"mpcnet join bundle v1\0"
IDENTITY_KEY, TLS_KEY, TLS_CERT, BUNDLE = "identity.key", "tls.key", "tls.crt", "bundle.yaml"


class JoinBundle(StrictModel):
    """The public parts of one operator, signed by its identity key."""

    name: Name
    role: Literal["node", "coordinator"]
    identity_key: Hex32
    tls_cert: str = Field(description="self-signed PEM certificate whose CN is `name`")
    host: str | None = Field(default=None, min_length=1, max_length=253)
    mpc_port: int | None = Field(default=None, ge=1, le=65535)
    signature: str = Field(default="", description="Ed25519 over the fields above, hex")

    def payload(self) -> bytes:
        body = self.model_dump(mode="json", exclude={"signature"})
        return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def create_operator(directory: Path, name: str, role: str, passphrase: bytes,
                    host: str | None = None, mpc_port: int | None = None) -> JoinBundle:
    """Create this operator's identity key, TLS key and certificate in `directory` (made
    0700; refused if it already holds an identity key) and write its signed bundle there."""
    if role == "node" and (host is None or mpc_port is None):
        raise ConfigError("a node operator needs its MPC endpoint: --host and --mpc-port")
    directory = Path(directory)
    if (directory / IDENTITY_KEY).exists():
        raise ConfigError(f"{directory / IDENTITY_KEY} exists: this directory already holds"
                          f" an operator; choose another")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    identity_hex = pki.new_identity(directory / IDENTITY_KEY, passphrase)
    dns, ips = [name], []
    if host is not None:
        (ips if pki.is_ip(host) else dns).append(host)
    key, cert = pki.self_signed_cert(name, dns, ips, server=role == "node", client=True)
    pki.write_key(directory / TLS_KEY, key, passphrase)
    (directory / TLS_CERT).write_text(pki.cert_pem(cert))
    bundle = JoinBundle(name=name, role=role, identity_key=identity_hex,
                        tls_cert=pki.cert_pem(cert), host=host if role == "node" else None,
                        mpc_port=mpc_port if role == "node" else None)
    signed = bundle.model_copy(update={"signature": pki.load_identity(
        directory / IDENTITY_KEY, passphrase).sign(bundle.payload()).hex()})
    dump_yaml(directory / BUNDLE, signed)
    return signed


def verify_bundle(bundle: JoinBundle, source: str = "join bundle") -> JoinBundle:
    """The bundle, if its signature verifies under its identity key and its certificate is
    self-signed, names the operator and is no CA; else ConfigError naming the problem."""
    try:
        pki.identity_public(bundle.identity_key).verify(bytes.fromhex(bundle.signature),
                                                        bundle.payload())
    except (InvalidSignature, ValueError):
        raise ConfigError(f"{source}: the signature of {bundle.name!r} does not verify under"
                          f" its identity key") from None
    try:
        cert = x509.load_pem_x509_certificate(bundle.tls_cert.encode())
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        raise ConfigError(f"{source}: the TLS certificate of {bundle.name!r} is not a"
                          f" self-signed certificate") from None
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn or cn[0].value != bundle.name:
        raise ConfigError(f"{source}: the TLS certificate does not name {bundle.name!r}")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = True  # without the extension, some verifiers would let it issue certificates
    if is_ca:
        raise ConfigError(f"{source}: the TLS certificate of {bundle.name!r} must say CA=false")
    if bundle.role == "node" and (bundle.host is None or bundle.mpc_port is None):
        raise ConfigError(f"{source}: node {bundle.name!r} gives no MPC endpoint")
    return bundle


def load_bundle(path: Path) -> JoinBundle:
    """Read and verify a join bundle file."""
    return verify_bundle(load_yaml_model(Path(path), JoinBundle), str(path))


def assemble(bundles: list[JoinBundle], cluster_id: str, threshold: int,
             broker_cert: str | None = None, limits: Limits | None = None,
             ca_cert: str | None = None, update_quorum: int | None = None) -> Roster:
    """A version-1 roster (unsigned) of the verified bundles' operators, parties in the
    order given."""
    for b in bundles:
        verify_bundle(b)
    nodes = [b for b in bundles if b.role == "node"]
    try:
        return Roster(
            cluster_id=cluster_id, version=1, threshold=threshold,
            parties=[PartyInfo(index=i, name=b.name, host=b.host, mpc_port=b.mpc_port,
                               identity_key=b.identity_key, tls_cert=b.tls_cert)
                     for i, b in enumerate(nodes)],
            coordinators=[CoordinatorInfo(name=b.name, identity_key=b.identity_key,
                                          tls_cert=b.tls_cert)
                          for b in bundles if b.role == "coordinator"],
            broker_cert=broker_cert, ca_cert=ca_cert, update_quorum=update_quorum,
            limits=limits or Limits())
    except ValidationError as exc:
        raise ConfigError(f"roster: {validation_problems(exc)}") from None


def next_version(current: Roster, add: list[JoinBundle] = (), remove: list[str] = (),
                 threshold: int | None = None) -> Roster:
    """The unsigned next version of `current`: operators added from verified bundles,
    operators removed by name, the threshold changed; parties keep their order."""
    listed = {p.name for p in current.parties} | {c.name for c in current.coordinators}
    unknown = sorted(set(remove) - listed)
    if unknown:
        raise ConfigError(f"cannot remove {', '.join(unknown)}: not in roster version"
                          f" {current.version}")
    for b in add:
        verify_bundle(b)
    kept = [p for p in current.parties if p.name not in remove]
    nodes = [*kept, *(PartyInfo(index=0, name=b.name, host=b.host, mpc_port=b.mpc_port,
                                identity_key=b.identity_key, tls_cert=b.tls_cert)
                      for b in add if b.role == "node")]
    coordinators = [*(c for c in current.coordinators if c.name not in remove),
                    *(CoordinatorInfo(name=b.name, identity_key=b.identity_key,
                                      tls_cert=b.tls_cert)
                      for b in add if b.role == "coordinator")]
    try:
        return Roster.model_validate({
            **current.model_dump(), "version": current.version + 1, "signatures": [],
            "threshold": current.threshold if threshold is None else threshold,
            "parties": [p.model_copy(update={"index": i}) for i, p in enumerate(nodes)],
            "coordinators": coordinators})
    except ValidationError as exc:
        raise ConfigError(f"roster version {current.version + 1}: {validation_problems(exc)}") from None


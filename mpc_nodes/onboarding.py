"""An operator makes its own secrets and joins with a signed bundle of their public parts.

`create_operator` runs on the operator's own machine: it writes the Ed25519 identity key,
the TLS key (both encrypted under the operator's passphrase, which the caller supplies and
which is never written here) and a self-signed TLS certificate, and returns a JoinBundle: the
public parts (name, role, identity key, certificate, MPC endpoint) signed by the new identity
key.  `assemble` builds a first roster from bundles; mpc_nodes.governance decides whether
the operators' signatures make it valid; `next_version` makes the next version.

Key rotation keeps the node usable at every step (docs/OPERATOR.md, "Rotating an operator's
keys"): `start_rotation` writes NEW keys beside the ones in use (NEXT: identity.next.key,
tls.next.key, tls.next.crt, bundle.next.yaml, under the same passphrase) and returns their
rotation bundle; the keys in use keep working until `finish_rotation`, given a roster the node
accepts that pins the new keys, moves them into place (the old ones become PREVIOUS:
identity.prev.key, ...).  Each file is replaced by one atomic rename, so the in-use names
always hold a key; a finish that was interrupted is completed by running it again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, NamedTuple

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID
from pydantic import Field, ValidationError

from keyshare.atomic import fsync_dir
from mpc_nodes import governance, pki
from mpc_nodes.config import (ConfigError, CoordinatorInfo, Hex32, Limits, Name, PartyInfo, Roster,
                              dump_yaml, load_yaml_model, validation_problems)
from mpc_nodes.models import StrictModel

DOMAIN = b"mpcnet join bundle v1\0"
IDENTITY_KEY, TLS_KEY, TLS_CERT, BUNDLE = "identity.key", "tls.key", "tls.crt", "bundle.yaml"
# A new roster's security mode unless its creator asks for semi-honest (issue 13); a roster
# document without the field still means semi-honest (config.Roster.security).
NEW_SECURITY = "malicious"


class KeyFiles(NamedTuple):
    """The names of one set of an operator's key files in its directory."""

    identity: str
    tls_key: str
    tls_cert: str
    bundle: str


IN_USE = KeyFiles(IDENTITY_KEY, TLS_KEY, TLS_CERT, BUNDLE)  # what node.yaml names
NEXT = KeyFiles("identity.next.key", "tls.next.key", "tls.next.crt", "bundle.next.yaml")
PREVIOUS = KeyFiles("identity.prev.key", "tls.prev.key", "tls.prev.crt", "bundle.prev.yaml")


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
    return _make_keys(directory, IN_USE, name, role, passphrase, host, mpc_port)


def _make_keys(directory: Path, files: KeyFiles, name: str, role: str, passphrase: bytes,
               host: str | None, mpc_port: int | None) -> JoinBundle:
    """New identity and TLS keys (encrypted under `passphrase`, 0600) and a self-signed
    certificate under the names `files`, and their bundle signed by the new identity key."""
    identity_hex = pki.new_identity(directory / files.identity, passphrase)
    dns, ips = [name], []
    if host is not None:
        (ips if pki.is_ip(host) else dns).append(host)
    key, cert = pki.self_signed_cert(name, dns, ips, server=role == "node", client=True)
    pki.write_key(directory / files.tls_key, key, passphrase)
    (directory / files.tls_cert).write_text(pki.cert_pem(cert))
    bundle = JoinBundle(name=name, role=role, identity_key=identity_hex,
                        tls_cert=pki.cert_pem(cert), host=host if role == "node" else None,
                        mpc_port=mpc_port if role == "node" else None)
    signed = bundle.model_copy(update={"signature": pki.load_identity(
        directory / files.identity, passphrase).sign(bundle.payload()).hex()})
    dump_yaml(directory / files.bundle, signed)
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
             ca_cert: str | None = None, update_quorum: int | None = None,
             security: str = NEW_SECURITY) -> Roster:
    """A version-1 roster (unsigned) of the verified bundles' operators, parties in the
    order given, in security mode `security` (a new cluster's default: malicious)."""
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
            limits=limits or Limits(), security=security)
    except ValidationError as exc:
        raise ConfigError(f"roster: {validation_problems(exc)}") from None


def next_version(current: Roster, add: list[JoinBundle] = (), remove: list[str] = (),
                 threshold: int | None = None, rotate: list[JoinBundle] = (),
                 limits: Limits | None = None, update_quorum: int | None = None,
                 security: str | None = None) -> Roster:
    """The unsigned next version of `current`: operators added from verified bundles,
    operators removed by name, operators' keys replaced in place from their rotation bundles
    (`rotate`; same name, same place), the threshold, limits, update quorum or security mode
    changed; parties keep their order."""
    listed = {p.name for p in current.parties} | {c.name for c in current.coordinators}
    unknown = sorted(set(remove) - listed)
    if unknown:
        raise ConfigError(f"cannot remove {', '.join(unknown)}: not in roster version"
                          f" {current.version}")
    for b in add:
        verify_bundle(b)
    keys = rotated(current, rotate)
    both = sorted(set(keys) & set(remove))
    if both:
        raise ConfigError(f"{', '.join(both)} cannot be both removed and re-keyed")
    kept = [p.model_copy(update=keys.get(p.name, {})) for p in current.parties
            if p.name not in remove]
    nodes = [*kept, *(PartyInfo(index=0, name=b.name, host=b.host, mpc_port=b.mpc_port,
                                identity_key=b.identity_key, tls_cert=b.tls_cert)
                      for b in add if b.role == "node")]
    coordinators = [*(c.model_copy(update=keys.get(c.name, {})) for c in current.coordinators
                      if c.name not in remove),
                    *(CoordinatorInfo(name=b.name, identity_key=b.identity_key,
                                      tls_cert=b.tls_cert)
                      for b in add if b.role == "coordinator")]
    try:
        return Roster.model_validate({
            **current.model_dump(), "version": current.version + 1, "signatures": [],
            "threshold": current.threshold if threshold is None else threshold,
            "parties": [p.model_copy(update={"index": i}) for i, p in enumerate(nodes)],
            "coordinators": coordinators,
            "limits": current.limits if limits is None else limits,
            "update_quorum": current.update_quorum if update_quorum is None else update_quorum,
            "security": current.security if security is None else security})
    except ValidationError as exc:
        raise ConfigError(f"roster version {current.version + 1}: {validation_problems(exc)}") from None


def rotated(current: Roster, bundles: list[JoinBundle]) -> dict[str, dict]:
    """Operator name -> its new identity_key and tls_cert, from verified rotation bundles of
    operators `current` lists in the same role at the same MPC endpoint (a rotation changes
    keys only)."""
    keys: dict[str, dict] = {}
    for b in bundles:
        verify_bundle(b, f"rotation bundle of {b.name}")
        entry = current.party(b.name) if b.role == "node" else current.coordinator(b.name)
        if entry is None:
            raise ConfigError(f"cannot rotate the keys of {b.name}: roster version"
                              f" {current.version} lists no {b.role} {b.name} (--add adds one)")
        if b.role == "node" and (b.host, b.mpc_port) != (entry.host, entry.mpc_port):
            raise ConfigError(f"the rotation bundle of {b.name} gives the MPC endpoint"
                              f" {b.host}:{b.mpc_port}, the roster {entry.host}:{entry.mpc_port}:"
                              f" a rotation changes keys only")
        if b.identity_key == entry.identity_key:
            raise ConfigError(f"the rotation bundle of {b.name} has the identity key roster"
                              f" version {current.version} pins already: make new keys with"
                              f" mpcnet operator rotate")
        if b.name in keys:
            raise ConfigError(f"two rotation bundles for {b.name}")
        keys[b.name] = {"identity_key": b.identity_key, "tls_cert": b.tls_cert}
    return keys


def changed_limits(limits: Limits, settings: list[str]) -> Limits:
    """`limits` with settings "NAME=VALUE" applied (VALUE "none" clears an optional limit);
    ConfigError naming an unknown limit or a value it does not take."""
    names = list(Limits.model_fields)
    values = limits.model_dump()
    for setting in settings:
        name, sep, value = setting.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ConfigError(f"limit {setting!r}: give NAME=VALUE")
        if name not in names:
            raise ConfigError(f"unknown limit {name!r}: the limits are {', '.join(names)}")
        values[name] = None if value.lower() == "none" else value
    try:
        return Limits.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(f"limits: {validation_problems(exc)}") from None


# -- key rotation -------------------------------------------------------------------------

def start_rotation(directory: Path, passphrase: bytes) -> JoinBundle:
    """New identity and TLS keys for the operator of `directory`, beside the ones in use (the
    NEXT names, encrypted under the same passphrase, which must open the identity key in
    use), and their rotation bundle; the keys in use are not touched."""
    directory = Path(directory)
    pending = [n for n in NEXT if (directory / n).exists()]
    if pending:
        raise ConfigError(f"{directory} holds new keys already ({', '.join(pending)}): finish"
                          f" that rotation (mpcnet operator rotate --finish), or delete them to"
                          f" start over while no roster pins them")
    current = load_bundle(directory / BUNDLE)
    in_use = pki.load_identity(directory / IDENTITY_KEY, passphrase)  # the operator's passphrase
    if pki.public_hex(in_use) != current.identity_key:
        raise ConfigError(f"{directory / IDENTITY_KEY} is not the key of {directory / BUNDLE}")
    return _make_keys(directory, NEXT, current.name, current.role, passphrase, current.host,
                      current.mpc_port)


def finish_rotation(directory: Path, passphrase: bytes, roster: Roster,
                    held: Roster) -> JoinBundle | None:
    """Move the new keys of `directory` into place, once `roster` pins them and a node holding
    `held` accepts it (mpc_nodes.governance); return their bundle, or None when there is
    nothing to move (the keys in use are those `roster` pins: a finish that completed).
    Nothing moves unless every new key opens under `passphrase` and matches the roster; then
    each in-use file is kept as PREVIOUS and replaced by one atomic rename."""
    directory = Path(directory)
    after = KeyFiles(*(n if (directory / n).exists() else u for n, u in zip(NEXT, IN_USE)))
    try:
        governance.accept(held, roster)
    except governance.RosterTrustError as exc:
        raise ConfigError(f"not switching keys: {exc}") from None
    bundle = load_bundle(directory / after.bundle)
    if after == IN_USE:  # nothing to move: done already, or never started
        try:
            _check_pinned(directory, after, bundle, passphrase, roster)
        except ConfigError:
            raise ConfigError(f"{directory} holds no new keys ({NEXT.identity}): start a"
                              f" rotation with mpcnet operator rotate") from None
        return None
    _check_pinned(directory, after, bundle, passphrase, roster)
    for new, in_use, previous in zip(NEXT, IN_USE, PREVIOUS):
        if (directory / new).exists():
            _keep(directory / in_use, directory / previous)
            os.replace(directory / new, directory / in_use)
    fsync_dir(directory)
    return bundle


def _check_pinned(directory: Path, files: KeyFiles, bundle: JoinBundle, passphrase: bytes,
                  roster: Roster) -> None:
    """`files` open under `passphrase` and are the keys `roster` pins for the bundle's
    operator; else ConfigError saying what differs."""
    where = f"roster {roster.cluster_id} version {roster.version}"
    entry = (roster.party(bundle.name) if bundle.role == "node"
             else roster.coordinator(bundle.name))
    if entry is None:
        raise ConfigError(f"{where} does not list {bundle.role} {bundle.name}")
    identity = pki.public_hex(pki.load_identity(directory / files.identity, passphrase))
    if identity != entry.identity_key or bundle.identity_key != identity:
        raise ConfigError(f"{where} does not pin the identity key in {directory / files.identity}"
                          f" for {bundle.name}: it needs the update made from"
                          f" {directory / files.bundle}, signed and distributed, first")
    cert = x509.load_pem_x509_certificate((directory / files.tls_cert).read_bytes())
    pinned = entry.tls_cert and x509.load_pem_x509_certificate(entry.tls_cert.encode())
    if cert != pinned:
        raise ConfigError(f"{where} does not pin the certificate {directory / files.tls_cert}"
                          f" for {bundle.name}")
    key = pki.load_private_key(directory / files.tls_key, passphrase)
    if key.public_key() != cert.public_key():
        raise ConfigError(f"{directory / files.tls_key} is not the key of"
                          f" {directory / files.tls_cert}")


def _keep(path: Path, previous: Path) -> None:
    """Make `previous` a copy (a second link) of `path`, which stays in place."""
    if not path.exists():
        return
    spare = previous.with_name(previous.name + ".new")
    spare.unlink(missing_ok=True)
    os.link(path, spare)
    os.replace(spare, previous)

"""Identities and TLS: Ed25519 identity keys, self-signed certificates pinned by the roster,
and (for a one-machine cluster's broker only) a CA.

Private keys are written encrypted (PKCS#8, the operator's passphrase) with mode 0600 and
atomically; public parts go into the roster. TLS uses ECDSA P-256 certificates and TLS 1.3;
a party's certificate names the party (CN and DNS SAN), so a peer is identified by its cert.
Each operator makes its own certificate, self-signed and not a CA: a peer that trusts the
roster's pinned certificates accepts exactly those, and nobody can issue another.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import ssl
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from keyshare.atomic import write_atomic

from mpc_nodes.config import PassphraseSource, resolve
from mpc_nodes.errors import UserError

CERT_DAYS = 825


class KeyFileError(UserError, ValueError):
    """A key or passphrase file is missing, unprotected, or cannot be decrypted."""


def write_private(path: Path, data: bytes) -> None:
    """Write secret bytes atomically with mode 0600 (temp file, fsync, rename, fsync dir)."""
    write_atomic(path, data, mode=0o600)


def read_passphrase(source: PassphraseSource, config_path: Path) -> bytes:
    """Read an operator passphrase from its environment variable or its 0600 file."""
    if source.env is not None:
        value = os.environ.get(source.env)
        if not value:
            raise KeyFileError(f"passphrase environment variable {source.env} is not set or empty")
        return value.encode()
    path = resolve(config_path, source.file)
    try:
        mode = path.stat().st_mode
        value = path.read_bytes().strip()
    except FileNotFoundError:
        raise KeyFileError(f"passphrase file {path} not found") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"passphrase file {path} is readable by others (mode {mode & 0o777:o});"
                           " run: chmod 600 " + str(path))
    if not value:
        raise KeyFileError(f"passphrase file {path} is empty")
    return value


def new_passphrase() -> str:
    """A random passphrase for generated local clusters (operators bring their own)."""
    return secrets.token_urlsafe(24)


def _encrypted_pem(key, passphrase: bytes) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.BestAvailableEncryption(passphrase))


def load_private_key(path: Path, passphrase: bytes):
    """Load an encrypted PEM private key, with an error that says which file and why."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} not found") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is accessible by others (mode {mode & 0o777:o});"
                           f" run: chmod 600 {path}")
    try:
        return serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"cannot decrypt key file {path}: wrong passphrase or corrupt file"
                           f" ({exc})") from None


# -- identities ---------------------------------------------------------------------------

def new_identity(path: Path, passphrase: bytes) -> str:
    """Create an Ed25519 identity key at path; return the public key as hex."""
    key = Ed25519PrivateKey.generate()
    write_private(path, _encrypted_pem(key, passphrase))
    return public_hex(key)


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw).hex()


def load_identity(path: Path, passphrase: bytes) -> Ed25519PrivateKey:
    key = load_private_key(path, passphrase)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 identity key")
    return key


def identity_public(hex_key: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(hex_key))


# -- X.509 ---------------------------------------------------------------------------------

def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _validity(builder):
    now = dt.datetime.now(dt.timezone.utc)
    return builder.not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(
        now + dt.timedelta(days=CERT_DAYS))


def new_ca(cluster_id: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA that issues the broker certificate of a one-machine cluster."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"mpcnet {cluster_id} CA")
    builder = _validity(x509.CertificateBuilder().subject_name(name).issuer_name(name)
                        .public_key(key.public_key()).serial_number(x509.random_serial_number()))
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    builder = builder.add_extension(x509.KeyUsage(
        digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
        key_encipherment=False, data_encipherment=False, key_agreement=False,
        encipher_only=False, decipher_only=False), critical=True)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                    critical=False)
    return key, builder.sign(key, hashes.SHA256())


def issue_cert(ca_key, ca_cert: x509.Certificate, cn: str, dns: list[str], ips: list[str],
               server: bool, client: bool) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Issue a leaf certificate for cn with the given SANs and key usages."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = _validity(x509.CertificateBuilder().subject_name(_name(cn))
                        .issuer_name(ca_cert.subject).public_key(key.public_key())
                        .serial_number(x509.random_serial_number()))
    builder = (builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    return key, builder.sign(ca_key, hashes.SHA256())


def self_signed_cert(cn: str, dns: list[str], ips: list[str], server: bool, client: bool
                     ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new key and a self-signed leaf certificate for cn (CA=False: it can issue nothing)."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    builder = _validity(x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
                        .public_key(key.public_key())
                        .serial_number(x509.random_serial_number()))
    builder = (builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages), critical=False))
    return key, builder.sign(key, hashes.SHA256())


def is_ip(host: str) -> bool:
    """Whether `host` is an IP address (a certificate names it as an IP SAN, not DNS)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def write_key(path: Path, key, passphrase: bytes | None) -> None:
    """Write a private key, encrypted when a passphrase is given, mode 0600."""
    enc = (serialization.BestAvailableEncryption(passphrase) if passphrase
           else serialization.NoEncryption())
    write_private(path, key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8, enc))


def cert_common_name(der_or_dict) -> str | None:
    """The CN of a peer certificate as returned by SSLSocket.getpeercert()."""
    for rdn in der_or_dict.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return None


# -- TLS contexts ---------------------------------------------------------------------------

def _context(purpose, cert: Path, key: Path, passphrase: bytes | None,
             ca_pem: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(purpose, cadata=ca_pem)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(str(cert), str(key), password=passphrase)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def server_context(cert: Path, key: Path, passphrase: bytes | None, ca_pem: str) -> ssl.SSLContext:
    """Server side of mutual TLS: present our cert, require a peer certificate that
    `ca_pem` (the roster's pinned certificates) trusts."""
    return _context(ssl.Purpose.CLIENT_AUTH, cert, key, passphrase, ca_pem)


def client_context(cert: Path | None, key: Path | None, passphrase: bytes | None,
                   ca_pem: str) -> ssl.SSLContext:
    """Client side: verify the server against `ca_pem` (pinned certificates, or a CA) and its
    name; present our cert."""
    if cert is None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx
    ctx = _context(ssl.Purpose.SERVER_AUTH, cert, key, passphrase, ca_pem)
    ctx.check_hostname = True
    return ctx

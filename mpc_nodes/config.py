"""Validated cluster configuration: the public roster and each node's and coordinator's own config.

The roster is public and identical on every machine; a node.yaml is private to its operator.
Relative paths inside a config file are resolved against that file's directory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, get_args

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from mpc_nodes.errors import UsageError, UserError
from mpc_nodes.models import StrictModel
from mpc_nodes.wire.parsing import MAX_YAML_BYTES, ParseBoundError, load_yaml, read_text

NAME_RE = r"^[a-z][a-z0-9-]{0,31}$"
Name = Annotated[str, Field(pattern=NAME_RE, description="lower-case name: a-z, 0-9, '-'")]
Hex32 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Security = Literal["malicious", "semi-honest"]
SECURITY_MODES: tuple[str, ...] = get_args(Security)


class ConfigError(UserError, ValueError):
    """A configuration file is missing, unreadable or invalid; the message names file and field."""


class PartyInfo(StrictModel):
    """One party as every other party and the coordinator see it."""

    index: int = Field(ge=0)
    name: Name
    host: str = Field(min_length=1, max_length=253)
    mpc_port: int = Field(ge=1, le=65535)
    identity_key: Hex32 = Field(description="Ed25519 public key, hex")
    tls_cert: str = Field(description="its own self-signed PEM certificate, pinned")


class CoordinatorInfo(StrictModel):
    """A coordinator whose signed job requests the nodes accept."""

    name: Name
    identity_key: Hex32
    tls_cert: str | None = Field(default=None, description=(
        "its self-signed PEM certificate for the broker login, pinned"))


class RosterSignature(StrictModel):
    """One operator's Ed25519 signature of a roster (mpc_nodes.governance)."""

    signer: Name
    signature: Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")]


class Limits(StrictModel):
    """Cluster-wide protocol limits that every node enforces."""

    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_request_ttl_s: float = Field(default=600.0, gt=0)
    vol_spread_limit: float = Field(default=0.25, gt=0, lt=1, description=(
        "circuit breaker: largest (max - min) / aggregate of the parties' vols for an option"))
    policy_quorum: int | None = Field(default=None, ge=1, description=(
        "signed policy approvals (ACCEPT votes) a signing job needs, from any parties; each"
        " approver records the spend and nonce. None: every party (caps exact network-wide)"))


class Roster(StrictModel):
    """The public description of a cluster: its parties and coordinators with their pinned
    keys and certificates, its version, and the operators' signatures of it
    (mpc_nodes.governance decides which signatures make a roster valid)."""

    cluster_id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{2,63}$")]
    version: int = Field(default=1, ge=1, description="raised by every roster update")
    threshold: int = Field(description="max colluding parties tolerated, >= 1; t+1 reconstruct")
    security: Security = Field(default="semi-honest", description=(
        "the adversary every MPC job must withstand: 'malicious' (secure with abort against t"
        " parties that deviate from the protocol: a node refuses every job kind whose protocol"
        " is not, mpc_nodes.jobs.kind.SessionKind.active_secure) or 'semi-honest' (t parties"
        " that follow the protocol and pool what they see).  New rosters are 'malicious' unless"
        " their creator asks otherwise (mpcnet init, mpcnet roster assemble: --security;"
        " onboarding.NEW_SECURITY); this field's default stays 'semi-honest' because a roster"
        " without the field (older ones, whose signatures cover no such field) is semi-honest"))
    parties: list[PartyInfo]
    coordinators: list[CoordinatorInfo] = Field(min_length=1)
    broker_cert: str | None = Field(default=None, description=(
        "the broker's pinned certificate; None: the broker's certificate is issued by ca_cert"))
    ca_cert: str | None = Field(default=None, description=(
        "only for a one-machine cluster (mpcnet init): the CA that issued the broker's"
        " certificate; no party or coordinator certificate is trusted through it"))
    update_quorum: int | None = Field(default=None, ge=1, description=(
        "party signatures a roster update needs from this roster's parties; None: n - t"))
    limits: Limits = Limits()
    signatures: list[RosterSignature] = Field(default_factory=list, description=(
        "operators' signatures of everything above (mpc_nodes.governance)"))

    @field_validator("security", mode="before")
    @classmethod
    def _security(cls, v):
        if v not in SECURITY_MODES:
            raise ValueError(f"{v!r} is not a security mode: give one of"
                             f" {', '.join(SECURITY_MODES)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> "Roster":
        n = len(self.parties)
        if n < 2:
            raise ValueError(f"a cluster needs at least 2 parties, got {n}")
        if self.threshold < 1:
            raise ValueError(f"threshold {self.threshold} is not allowed: t must be at least 1"
                             f" (with t = 0 each party's key share is the whole key)")
        if not 2 * self.threshold < n:
            raise ValueError(f"threshold {self.threshold} too large for {n} parties (need t < n/2)")
        if [p.index for p in self.parties] != list(range(n)):
            raise ValueError("party indices must be 0..n-1 in order")
        for what, values in (("name", [p.name for p in self.parties]),
                             ("identity_key", [p.identity_key for p in self.parties]),
                             ("host:mpc_port", [f"{p.host}:{p.mpc_port}" for p in self.parties]),
                             ("coordinator name", [c.name for c in self.coordinators])):
            if len(set(values)) != len(values):
                raise ValueError(f"duplicate party {what} in roster")
        both = {p.name for p in self.parties} & {c.name for c in self.coordinators}
        if both:  # a certificate's CN names one identity (broker logins, client ids)
            raise ValueError(f"{sorted(both)} named both a party and a coordinator")
        q, q_min = self.limits.policy_quorum, self.min_policy_quorum
        if q is not None and not q_min <= q <= n:
            raise ValueError(f"limits.policy_quorum {q} must be between {q_min} and {n}: two"
                             f" quorums must share t+1 = {self.threshold + 1} parties (2q - n"
                             f" > t) so that an honest one sees both, and a quorum must hold the"
                             f" 2t+1 signers")
        if self.broker_cert is None and self.ca_cert is None:
            raise ValueError("the roster pins no broker certificate (broker_cert)")
        u = self.update_quorum
        if u is not None and not n - self.threshold <= u <= n:
            raise ValueError(f"update_quorum {u} must be between n - t = {n - self.threshold}"
                             f" and n = {n}")
        return self

    @property
    def roster_update_quorum(self) -> int:
        """Signatures of this roster's parties that its successor needs (at least n - t)."""
        return self.update_quorum or self.n - self.threshold

    @property
    def peer_certs_pem(self) -> str:
        """The pinned certificates of every party and coordinator: the only certificates MPC
        links and the broker accept from a peer (each is self-signed, so trusts only itself)."""
        return "".join([p.tls_cert for p in self.parties]
                       + [c.tls_cert for c in self.coordinators if c.tls_cert])

    @property
    def broker_trust_pem(self) -> str:
        """What a client checks the broker's certificate against."""
        return self.broker_cert or self.ca_cert

    @property
    def min_policy_quorum(self) -> int:
        """Smallest policy quorum under which nonces stay unique network-wide."""
        return max(2 * self.threshold + 1, -(-(self.n + self.threshold + 1) // 2))

    @property
    def policy_quorum(self) -> int:
        """Policy approvals a signing job needs (default: every party)."""
        return self.limits.policy_quorum or self.n

    @property
    def n(self) -> int:
        return len(self.parties)

    def party(self, name: str) -> PartyInfo | None:
        return next((p for p in self.parties if p.name == name), None)

    def coordinator(self, name: str) -> CoordinatorInfo | None:
        return next((c for c in self.coordinators if c.name == name), None)


class PassphraseSource(StrictModel):
    """Where an operator's passphrase comes from: an environment variable or a file (0600)."""

    env: str | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "PassphraseSource":
        if (self.env is None) == (self.file is None):
            raise ValueError("passphrase: give exactly one of 'env' or 'file'")
        return self


class NodeConfig(StrictModel):
    """One operator's party: identity, TLS, broker, data directory."""

    roster: str
    party: Name
    identity_key: str = Field(description="path to the encrypted Ed25519 identity key (PEM)")
    tls_cert: str
    tls_key: str = Field(description="path to the encrypted TLS private key (PEM)")
    passphrase: PassphraseSource = Field(description="unlocks the identity and TLS keys")
    share_passphrase: PassphraseSource | None = Field(default=None, description=(
        "unlocks the key shares in data_dir/keys (mpcnet keys rekey changes it); None: the"
        " same as `passphrase`"))
    broker: str = Field(default="mqtts://127.0.0.1:8883")
    broker_ca: str | None = Field(default=None, description="CA for the broker's certificate")
    mpc_bind: str = Field(default="127.0.0.1", description="address the MPC listener binds")
    mpc_listen_port: int | None = Field(default=None, ge=1, le=65535, description=(
        "port the MPC listener binds; default: this party's roster mpc_port"))
    data_dir: str = "data"
    inputs: str = Field(default="inputs.yaml", description="this operator's private inputs")
    policy: str = Field(default="policy.yaml", description="this operator's signing policy")
    session_timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    metrics_host: str = Field(default="127.0.0.1", description="bind address of /metrics, /healthz")
    metrics_port: int | None = Field(default=None, ge=1, le=65535, description="None: disabled")
    min_free_mib: float = Field(default=64.0, ge=0, description=(
        "below this much free space in data_dir the node votes no on every job (each writes"
        " durable state) and /healthz reports low disk; 0 disables the check"))

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        parse_broker_url(v)
        return v

    @property
    def shares_passphrase_source(self) -> PassphraseSource:
        """Where the passphrase of the key shares comes from."""
        return self.share_passphrase or self.passphrase


class CoordinatorConfig(StrictModel):
    """A coordinator's own identity and where it reaches the bus."""

    roster: str
    name: Name
    identity_key: str
    passphrase: PassphraseSource
    broker: str = "mqtts://127.0.0.1:8883"
    broker_ca: str | None = None
    tls_cert: str | None = Field(default=None, description="client certificate for the broker")
    tls_key: str | None = None

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        parse_broker_url(v)
        return v


_BROKER_RE = re.compile(r"^(mqtts?)://([^:/\s]+|\[[0-9a-fA-F:]+\]):(\d{1,5})/?$")


def parse_broker_url(url: str) -> tuple[bool, str, int]:
    """Split 'mqtt://host:port' or 'mqtts://host:port' into (tls, host, port)."""
    m = _BROKER_RE.match(url)
    if not m or not 1 <= int(m.group(3)) <= 65535:
        raise UsageError(f"broker URL {url!r} must look like mqtt://host:port or mqtts://host:port")
    return m.group(1) == "mqtts", m.group(2).strip("[]"), int(m.group(3))


def resolve(base: Path, path: str) -> Path:
    """Resolve a path from a config file relative to that file's directory."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base.parent / p)


def read_yaml_mapping(path: Path, error: type[Exception] = ConfigError) -> dict:
    """Read a YAML file whose top level is a mapping; any failure raises `error` naming it.
    Size and nesting are bounded (mpc_nodes.wire.parsing): inputs and policy are re-read per job."""
    try:
        raw = load_yaml(read_text(path, MAX_YAML_BYTES))
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except (OSError, ParseBoundError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"{path}: expected a mapping at the top level")
    return raw


def load_yaml_model(path: Path, model: type[BaseModel]):
    """Load and validate a YAML file, turning every failure into a ConfigError naming the file."""
    raw = read_yaml_mapping(path)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {validation_problems(exc)}") from None


def validation_problems(exc: ValidationError) -> str:
    """A validation error as one line: 'field.path: message; ...'."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}"
                     for e in exc.errors())


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (PEM certificates) as readable literal blocks."""


_Dumper.add_representer(str, lambda d, s: d.represent_scalar(
    "tag:yaml.org,2002:str", s, style="|" if "\n" in s else None))


def dump_yaml(path: Path, model: BaseModel) -> None:
    """Write a model as YAML (plain fields, no None values)."""
    Path(path).write_text(yaml.dump(model.model_dump(mode="json", exclude_none=True),
                                    Dumper=_Dumper, sort_keys=False, width=120))


def load_roster(path: Path) -> Roster:
    return load_yaml_model(path, Roster)


def load_node_config(path: Path) -> NodeConfig:
    return load_yaml_model(path, NodeConfig)


def load_coordinator_config(path: Path) -> CoordinatorConfig:
    return load_yaml_model(path, CoordinatorConfig)

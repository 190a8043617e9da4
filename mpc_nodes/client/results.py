"""What the client API's operations return (mpc_nodes.client.api): frozen dataclasses.

A job's result also carries its `outcome` (mpc_nodes.client.coordinator.JobOutcome: job id,
participants, votes, timings, each party's notes), whose `as_dict()` is the `--json` shape of
every CLI command that runs a job (docs/API.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from mpc_nodes.client.coordinator import JobOutcome


@dataclass(frozen=True, kw_only=True)
class FromJob:
    """A result that one job produced: `outcome` is that job's account (ids, votes,
    timings, each party's notes), left out of the result's repr and equality."""

    outcome: JobOutcome = field(repr=False, compare=False)


@dataclass(frozen=True)
class PartyStatus:
    party: str
    state: str
    """online, offline, deaf, or unknown (never heard of)."""
    version: str | None
    code_digest: str | None
    """The digest of the protocol code the party runs (mpc_nodes.node.codedigest)."""
    since: float | None
    roster_version: int | None
    """The roster version the party holds (None: unknown, or a node that does not say)."""
    security: str | None
    """That roster's security mode: malicious or semi-honest."""


@dataclass(frozen=True)
class NetworkStatus:
    coordinator_code_digest: str
    """The digest of this coordinator's protocol code: a party with another runs other code."""
    parties: tuple[PartyStatus, ...]
    roster_version: int
    """The roster version this coordinator holds: its jobs run only on parties holding it."""
    security: str
    """That roster's security mode, the one in force for this coordinator's jobs: malicious
    (only kinds secure against malicious parties run) or semi-honest."""

    @property
    def online(self) -> tuple[str, ...]:
        return tuple(p.party for p in self.parties if p.state == "online")

    def as_dict(self) -> dict:
        return {"coordinator_code_digest": self.coordinator_code_digest,
                "roster_version": self.roster_version, "security": self.security,
                "parties": [asdict(p) for p in self.parties]}


@dataclass(frozen=True)
class RoundTrip:
    connect_s: float
    """Session set-up: connections and TLS handshakes."""
    mpc_s: float
    per_round_s: float


@dataclass(frozen=True)
class Ping(FromJob):
    rounds: int
    parties: dict[str, RoundTrip]
    roster_version: int
    security: str
    """The security mode the session ran under: its roster's (every participant holds it)."""


@dataclass(frozen=True)
class Aggregate(FromJob):
    """The median or mean of every party's private number `input`; only it is revealed."""

    input: str
    """The private input's name, e.g. eth_vol."""
    method: Literal["median", "mean"]
    value: float
    """The aggregate: the only value the job reveals."""


@dataclass(frozen=True)
class Key(FromJob):
    """A threshold key: every party holds a share, nobody the key."""

    key_id: str
    scheme: str
    """ecdsa-secp256k1 (EVM transactions) or frost-ed25519 (messages, price reports)."""
    public_key: str
    """Hex: compressed secp256k1 point, or the 32-byte Ed25519 key."""
    address: str | None
    """The EVM address of an ECDSA key (EIP-55), None for FROST."""
    t: int
    """Parties that may collude without learning anything; t+1 sign."""
    n: int
    epoch: int
    purpose: str | None
    """What a FROST key signs: raw messages or price reports; None for ECDSA."""


@dataclass(frozen=True)
class Refreshed(FromJob):
    """New shares of the same key, committed on every party as `epoch`."""

    key_id: str
    epoch: int
    """The epoch now current on every party; the older shares are deleted."""
    public_key: str


@dataclass(frozen=True)
class Reshared(FromJob):
    """A key moved to the roster's parties and threshold (same public key), committed on
    every party as `epoch`; the old shares are deleted.  `unchanged`: it already was."""

    key_id: str
    epoch: int
    public_key: str
    holders: tuple[str, ...]
    """The parties holding it now, in point order."""
    threshold: int
    unchanged: bool = False

    def as_dict(self) -> dict:
        return {"key_id": self.key_id, "epoch": self.epoch, "public_key": self.public_key,
                "holders": list(self.holders), "threshold": self.threshold,
                "unchanged": self.unchanged, "job": self.outcome.as_dict()}


@dataclass(frozen=True)
class SignedTransaction(FromJob):
    """An EIP-1559 transaction signed by the network, verified by the coordinator with
    libsecp256k1 and eth-account before it was returned."""

    key_id: str
    address: str
    public_key: str
    hash: str
    """The transaction hash, 0x-hex."""
    raw: bytes
    """The signed raw transaction, ready for eth_sendRawTransaction."""
    r: int
    s: int
    y_parity: int
    """EIP-1559's v."""
    presignature: str | None


@dataclass(frozen=True)
class FrostSignature(FromJob):
    """An RFC 9591 Ed25519 signature, checked by the coordinator with OpenSSL."""

    key_id: str
    message: bytes
    signature: bytes
    public_key: bytes
    signers: tuple[str, ...]
    identifiers: tuple[int, ...]
    excluded: dict[str, str]
    """Signers left out on the way (refused, offline, cheated), with the reason."""
    attempts: int
    preprocessed: bool = False
    """Signed in one job with preprocessed commitments (`Client.presign` on a FROST key)."""


@dataclass(frozen=True)
class Presignatures(FromJob):
    """Presignatures held in the memory of `holders` only; the coordinator's ledger hands
    each out once (`sign(..., presigned=True)`)."""

    key_id: str
    ids: tuple[str, ...]
    """The new presignatures' ids, as the ledger records them."""
    holders: tuple[str, ...]
    epoch: int
    """The key epoch they belong to: a refresh retires them."""


@dataclass(frozen=True)
class PreprocessedCommitments(FromJob):
    """FROST round one done ahead of time: nonces held in the memory of each party of
    `recorded` only, their commitments in the coordinator's ledger, which hands out one
    per signer and signature (`sign(key, message)` is then one job)."""

    key_id: str
    epoch: int
    recorded: dict[str, int]
    """How many commitments of each party the ledger recorded."""
    refused: dict[str, str]
    """Online holders whose commitments were not recorded, with the reason."""


@dataclass(frozen=True)
class SignedReport:
    """A price report signed by a quorum of the operators (FROST, purpose reports);
    `as_dict()` is the file `verify_report` checks."""

    report: dict
    signature: str
    public_key: str
    signers: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"report": self.report, "signature": self.signature,
                "public_key": self.public_key, "signers": list(self.signers)}


@dataclass(frozen=True)
class SignedMark(FromJob):
    """One option series' mark, EIP-712 typed data signed by the network's threshold ECDSA
    key (one secp256k1 signature a contract checks with `ecrecover`); `as_dict()` is the
    mark's JSON: typed data, signature and digest."""

    key_id: str
    signer: str
    """The key's address: the oracle address a verifier contract is deployed with."""
    typed_data: dict
    """eth_signTypedData_v4 JSON (bytes32 fields as 0x hex)."""
    digest: bytes
    signature: bytes
    """65 bytes r || s || v, v 27 or 28, s low."""

    def as_dict(self) -> dict:
        return {"typed_data": self.typed_data, "signature": "0x" + self.signature.hex(),
                "digest": "0x" + self.digest.hex(), "signer": self.signer,
                "key_id": self.key_id}


@dataclass(frozen=True)
class Settlement:
    """A call of the settlement contract signed by the network's vault key through every
    approver's policy; `submitted` is its hash once an endpoint accepted it (None: not
    submitted, `transaction.raw` is the signed transaction to send)."""

    function: str
    contract: str
    transaction: SignedTransaction
    submitted: str | None

    def as_dict(self) -> dict:
        return {"function": self.function, "contract": self.contract,
                "address": self.transaction.address, "hash": self.transaction.hash,
                "raw": "0x" + self.transaction.raw.hex(), "submitted": self.submitted}


@dataclass(frozen=True)
class Priced(FromJob):
    """Options priced at the parties' aggregated private vols."""

    underlying: str
    spot: float
    rate: float
    dividend: float
    method: str
    reveal: str
    breached: tuple[int, ...]
    """Indices of the options the circuit breaker refused."""
    breaker_limit: float
    options: tuple[OptionResult, ...] | None
    """Per option; None for a portfolio."""
    portfolio: dict[str, float] | None
    """Quantity-weighted totals, for a portfolio."""
    jobs: tuple[str, ...]
    signed_report: SignedReport | None
    params: dict = field(repr=False, compare=False)
    """The request as sent (a report of it is signed from these)."""
    marks: tuple[SignedMark, ...] = ()
    """With sign_eip712: one signed mark per option, in order."""

    def summary(self) -> dict:
        """The `output` of `mpcnet price --json`."""
        out = {"underlying": self.underlying, "spot": self.spot, "rate": self.rate,
               "dividend": self.dividend, "method": self.method, "reveal_to": self.reveal,
               "breached": list(self.breached), "breaker_limit": self.breaker_limit,
               "jobs": list(self.jobs)}
        if self.portfolio is not None:
            out["portfolio"] = self.portfolio
        else:
            out["options"] = [o.as_dict() for o in self.options]
        if self.signed_report:
            out["signed_report"] = {k: v for k, v in self.signed_report.as_dict().items()
                                    if k != "report"}
        if self.marks:
            out["marks"] = [m.as_dict() for m in self.marks]
        return out


@dataclass(frozen=True)
class OptionResult:
    """One option of a priced book: its terms, and its values or that the breaker refused it."""

    index: int
    """The option's row in the book, from 0."""
    type: Literal["call", "put"]
    strike: float
    expiry_years: float
    status: Literal["ok", "breaker"]
    """breaker: the parties' vols disagreed too much to reveal its price."""
    quantity: float | None = None
    price: float | None = None
    delta: float | None = None
    gamma: float | None = None
    vega: float | None = None
    theta: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class VerifiedReport:
    """A signed price report that verified: form, inputs hash, result digest, signature."""

    job_id: str
    cluster_id: str
    key_id: str
    public_key: str
    key_pinned: bool
    """False: checked against the report's own key, which anyone could have made."""
    underlying: str
    timestamp: int
    report: dict = field(repr=False)


@dataclass(frozen=True)
class EpochState:
    """One party's account of a key's epochs."""

    committed: int | None
    epochs: dict[str, str]
    """Epoch -> digest of the sharing held on disk."""
    promised: dict[str, str]
    """Epochs this party voted to commit -> their sharing digest."""
    holders: tuple[str, ...] = ()
    """The committee of its committed epoch, in point order (none if it holds no share)."""

    @classmethod
    def from_node(cls, state: dict) -> EpochState:
        key = state.get("key") or {}
        return cls(state["committed"], dict(state["epochs"]), dict(state["promised"]),
                   tuple(key.get("holders", ())))


@dataclass(frozen=True)
class KeyStatus:
    key_id: str
    states: dict[str, EpochState]
    problems: dict[str, str]
    """Parties that did not answer, and why."""
    verdict: str
    """One line: consistent, what a repair would do, or why it cannot."""

    @property
    def consistent(self) -> bool:
        return not self.problems and self.verdict.startswith(("consistent", "no party"))

    def as_dict(self) -> dict:
        return {"key_id": self.key_id, "states": _node_states(self.states),
                "problems": self.problems, "verdict": self.verdict}


@dataclass(frozen=True)
class RepairStep:
    kind: str
    epoch: int
    ok: bool
    error: str | None


@dataclass(frozen=True)
class Repair:
    key_id: str
    steps: tuple[RepairStep, ...]
    states: dict[str, EpochState]
    problems: dict[str, str]
    error: str | None
    """None when the key is consistent on every party again."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict:
        return {"key_id": self.key_id, "steps": [asdict(s) for s in self.steps],
                "states": _node_states(self.states), "problems": self.problems,
                "error": self.error}


def _node_states(states: dict[str, EpochState]) -> dict[str, dict]:
    return {name: asdict(s) for name, s in states.items()}


@dataclass(frozen=True)
class DroppedPresignature:
    id: str
    reason: str


@dataclass(frozen=True)
class PresignaturePool:
    """The coordinator's presignatures of one key: how many are ready, and those dropped
    by a reconcile just now."""

    key_id: str
    ready: int
    """ECDSA: presignatures ready.  FROST: signatures the preprocessed commitments serve
    with the best-stocked t+1 signers (the t+1-th largest of `per_party`)."""
    dropped_now: tuple[DroppedPresignature, ...] = ()
    per_party: dict[str, int] | None = None
    """FROST: ready preprocessed commitments per party (None for an ECDSA key)."""

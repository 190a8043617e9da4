"""Each operator's own signing policy, checked before its node approves a signature.

policy.yaml (path in node.yaml, default beside it; configs/policy.example.yaml explains each
field) says which chains, which plain-ETH recipients and which ERC-20 calls a key may sign,
and caps what one transaction and a rolling 24 h may move, per key:

    version: 2
    chain_ids: [11155111]
    eth:                              # the native coin, in wei; fees count as spent
      recipients: ["0x…"]             # plain transfers (empty data) only to these
      max_fee_wei: …                  # gas × maxFeePerGas of one transaction
      max_per_tx_wei: …               # value + max fee of one transaction
      daily_cap_wei: …                # value + max fee, rolling 24 h per key
    tokens:                           # ERC-20 transfer / approve / transferFrom, decoded
      - {chain_id: …, address: "0x…", recipients: [...], spenders: [...], owners: [...],
         max_per_tx: …, daily_cap: …}  # amounts in the token's base units
    contracts:                        # settlement contracts (OptionSettlement), decoded
      - {chain_id: …, address: "0x…", functions: [settle, withdraw, …]}
    typed_data:                       # EIP-712 data (marks): these domains and types only
      - {name: "mpcnet mark", version: "1", chain_id: …, verifying_contract: "0x…",
         primary_types: [Mark], keys: [...]}  # keys: which keys (empty: any)

A node approves (votes ACCEPT) only what its policy allows and, in the same step, durably
reserves the transaction: its spend counts toward the caps and its nonce is bound to its
digest, so the identical transaction may be approved again (a retry, not counted twice) and
any other transaction with that nonce is refused.  No valid policy file: nothing is signed.

A refusal tells the requester which rule refused (`Decision.reason`), never the policy's
state (caps, amounts spent, allow-lists): that goes to the node's log (`Decision.detail`).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from mpc_nodes.config import ConfigError, load_yaml_model, resolve
from mpc_nodes.durable_db import open_db
from mpc_nodes.jobs.calldata import (SETTLEMENT_FUNCTIONS, CalldataError, decode_erc20,
                                     decode_settlement)
from mpc_nodes.jobs.evm import Transaction, checked_address
from mpc_nodes.models import StrictTypedModel

DAY_S = 24 * 3600
ETH = "eth"  # the asset name of the native coin in the spend log (summed over all chains)

Address = Annotated[str, AfterValidator(checked_address)]
Wei = Annotated[int, Field(ge=0)]


class EthRule(StrictTypedModel):
    """The native coin: where plain transfers may go, and what value plus fees may reach."""

    recipients: list[Address] = Field(default_factory=list, description=(
        "plain transfers (empty data) only to these"))
    max_fee_wei: Wei = Field(description="gas × maxFeePerGas of one transaction")
    max_per_tx_wei: Wei = Field(description="value + max fee of one transaction")
    daily_cap_wei: Wei = Field(description="value + max fee, rolling 24 h per key")


class TokenRule(StrictTypedModel):
    """One ERC-20 contract on one chain: who may receive or be approved, and how much."""

    chain_id: int = Field(ge=1)
    address: Address
    label: str = Field(default="", max_length=40)
    recipients: list[Address] = Field(default_factory=list, description=(
        "`to` of transfer and transferFrom"))
    spenders: list[Address] = Field(default_factory=list, description="`spender` of approve")
    owners: list[Address] = Field(default_factory=list, description=(
        "`from` of transferFrom (accounts whose allowance the key spends)"))
    max_per_tx: Wei = Field(description="amount of one call, in base units (approve: the"
                                        " allowance)")
    daily_cap: Wei = Field(description="amounts of all calls, rolling 24 h per key")

    @property
    def asset(self) -> str:
        return f"erc20:{self.chain_id}:{self.address.lower()}"


SettlementFunction = Literal[tuple(SETTLEMENT_FUNCTIONS)]
PAYABLE = {"open_position"}  # the settlement functions that take ETH (the collateral)


class ContractRule(StrictTypedModel):
    """One settlement contract (contracts/OptionSettlement.vy) on one chain: the functions a
    key may call on it, each decoded from the contract's ABI."""

    chain_id: int = Field(ge=1)
    address: Address
    label: str = Field(default="", max_length=40)
    functions: list[SettlementFunction] = Field(min_length=1)


class TypedDataRule(StrictTypedModel):
    """EIP-712 typed data a key may sign: one domain, exactly, and its primary types."""

    name: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=16)
    chain_id: int = Field(ge=1)
    verifying_contract: Address
    primary_types: list[str] = Field(min_length=1)
    keys: list[str] = Field(default_factory=list, description="these keys only (empty: any)")

    def allows(self, domain: dict, primary_type: str, key_id: str) -> bool:
        return (domain == {"name": self.name, "version": self.version,
                           "chainId": self.chain_id,
                           "verifyingContract": self.verifying_contract}
                and primary_type in self.primary_types
                and (not self.keys or key_id in self.keys))


class Policy(StrictTypedModel):
    """A signing policy, version 2.  Every call is decoded; fees count toward value caps."""

    version: Literal[2]
    chain_ids: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    eth: EthRule
    tokens: list[TokenRule] = Field(default_factory=list)
    contracts: list[ContractRule] = Field(default_factory=list)
    typed_data: list[TypedDataRule] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _version(cls, raw):
        if isinstance(raw, dict) and "version" not in raw:
            raise ValueError(
                "this is a version 1 policy (or has no version): version 1 checked only the"
                " first 4 bytes of contract calls and counted no fees, so it allowed more than"
                " it said. Rewrite it as version 2 (see configs/policy.example.yaml)")
        return raw

    @model_validator(mode="after")
    def _tokens(self) -> "Policy":
        seen = set()
        for t in self.tokens:
            if t.chain_id not in self.chain_ids:
                raise ValueError(f"token {t.address} is on chain {t.chain_id}, which chain_ids"
                                 f" does not allow")
            if t.asset in seen:
                raise ValueError(f"token {t.address} on chain {t.chain_id} is listed twice")
            seen.add(t.asset)
        for c in self.contracts:
            if c.chain_id not in self.chain_ids:
                raise ValueError(f"contract {c.address} is on chain {c.chain_id}, which"
                                 f" chain_ids does not allow")
            where = f"contract:{c.chain_id}:{c.address.lower()}"
            if self.token(c.chain_id, c.address) or where in seen:
                raise ValueError(f"contract {c.address} on chain {c.chain_id} is listed twice"
                                 f" (or also as a token)")
            seen.add(where)
        return self

    def token(self, chain_id: int, address: str) -> TokenRule | None:
        return next((t for t in self.tokens if t.chain_id == chain_id
                     and t.address.lower() == address.lower()), None)

    def contract(self, chain_id: int, address: str) -> ContractRule | None:
        return next((c for c in self.contracts if c.chain_id == chain_id
                     and c.address.lower() == address.lower()), None)


@dataclass(frozen=True)
class Decision:
    """accept, or the rule that refused (`reason`, for the requester) and the particulars
    (`detail`, for this node's log only); `spends` is what an approval reserves per asset."""

    accept: bool
    reason: str = ""
    detail: str = ""
    spends: dict = field(default_factory=dict)


def _refuse(reason: str, detail: str = "") -> Decision:
    return Decision(False, reason, detail or reason)


class PolicyState:
    """Nonce bindings (key, chain, nonce → transaction digest) and the spend log of the last
    24 h, in a SQLite database in the node's data directory.  A reservation is one
    transaction, durable when ``reserve`` returns (WAL, synchronous=FULL: one log sync, where
    the JSON file of earlier versions cost a file sync, a rename and a directory sync on every
    signature's vote).  ``legacy``: that JSON file, imported once and renamed
    ``*.migrated``."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS nonces (key_chain TEXT NOT NULL, nonce TEXT NOT NULL,
                                       digest TEXT NOT NULL, PRIMARY KEY (key_chain, nonce));
    CREATE TABLE IF NOT EXISTS spend (ts REAL NOT NULL, key_id TEXT NOT NULL,
                                      asset TEXT NOT NULL, amount TEXT NOT NULL,
                                      digest TEXT NOT NULL);
    CREATE INDEX IF NOT EXISTS spend_by_key ON spend (key_id, asset, ts);
    CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """

    def __init__(self, path: Path, legacy: Path | None = None):
        self.path = Path(path)
        self._db = open_db(self.path, "FULL")
        self._db.executescript(self.SCHEMA)
        if legacy is not None and Path(legacy).exists():
            self._import(Path(legacy))

    def _import(self, legacy: Path) -> None:
        """Take over a JSON state of earlier versions (version 1: a nonce list, whose
        digests are unknown, so every use of them is refused; and ETH spends) once: the
        marker commits with the rows, so a crash before the rename imports nothing twice."""
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM meta WHERE name = 'imported'").fetchone() is None:
                old = json.loads(legacy.read_text())
                if old.get("version") != 2:
                    old = {"nonces": {k: {str(n): "" for n in v}
                                      for k, v in old.get("nonces", {}).items()},
                           "spend": [[ts, key, ETH, value, ""]
                                     for ts, key, value in old.get("spend", [])]}
                db.executemany("INSERT OR IGNORE INTO nonces VALUES (?, ?, ?)",
                               [(k, n, d) for k, by_nonce in old["nonces"].items()
                                for n, d in by_nonce.items()])
                db.executemany("INSERT INTO spend VALUES (?, ?, ?, ?, ?)",
                               [(ts, k, a, str(amount), d) for ts, k, a, amount, d in old["spend"]])
                db.execute("INSERT INTO meta VALUES ('imported', ?)", (legacy.name,))
        legacy.replace(legacy.with_name(legacy.name + ".migrated"))

    @contextmanager
    def _transaction(self):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def bound_digest(self, key_id: str, chain_id: int, nonce: int) -> str | None:
        row = self._db.execute("SELECT digest FROM nonces WHERE key_chain = ? AND nonce = ?",
                               (f"{key_id}:{chain_id}", str(nonce))).fetchone()
        return None if row is None else row[0]

    def spent_last_day(self, key_id: str, asset: str, now: float, besides: str) -> int:
        """What key_id moved of asset in the last 24 h, not counting transaction `besides`."""
        rows = self._db.execute("SELECT amount FROM spend WHERE key_id = ? AND asset = ?"
                                " AND ts > ? AND digest != ?",
                                (key_id, asset, now - DAY_S, besides))
        return sum(int(amount) for amount, in rows)

    def reserve(self, key_id: str, tx: Transaction, spends: dict, now: float) -> None:
        """Bind the nonce to this transaction and log its spends, durably; idempotent.  A
        nonce already bound to another transaction is never rebound (IntegrityError; the
        policy check refuses such a transaction before)."""
        digest = tx.digest.hex()
        if self.bound_digest(key_id, tx.chain_id, tx.nonce) == digest:
            return
        with self._transaction() as db:
            db.execute("INSERT INTO nonces VALUES (?, ?, ?)",
                       (f"{key_id}:{tx.chain_id}", str(tx.nonce), digest))
            db.execute("DELETE FROM spend WHERE ts <= ?", (now - DAY_S,))
            db.executemany("INSERT INTO spend VALUES (?, ?, ?, ?, ?)",
                           [(now, key_id, a, str(amount), digest) for a, amount in spends.items()])


class PolicyCheck:
    """A node's policy together with its state."""

    def __init__(self, policy: Policy | None, state: PolicyState, source: Path,
                 problem: str = ""):
        self.policy, self.state, self.source, self.problem = policy, state, source, problem

    def check(self, tx: Transaction, key_id: str) -> Decision:
        """Would this node sign tx with key_id now?  (An earlier approval of the identical
        transaction is not counted again.)"""
        p, now = self.policy, time.time()
        if p is None:
            return _refuse("this node has no valid signing policy",
                           f"{self.source}: {self.problem or 'no such file'}")
        if tx.chain_id not in p.chain_ids:
            return _refuse(f"chain id {tx.chain_id} is not allowed")
        if tx.max_fee > p.eth.max_fee_wei:
            return _refuse("over the fee limit (gas × maxFeePerGas)",
                           f"max fee {tx.max_fee} wei > max_fee_wei {p.eth.max_fee_wei}")
        spends = self._spends(p, tx)
        if isinstance(spends, Decision):
            return spends
        bound = self.state.bound_digest(key_id, tx.chain_id, tx.nonce)
        if bound is not None and bound != tx.digest.hex():
            return _refuse(f"nonce {tx.nonce} on chain {tx.chain_id} is already used by another"
                           f" transaction of key {key_id}")
        for asset, amount in spends.items():
            token = None if asset == ETH else p.token(tx.chain_id, tx.to)
            what = "" if token is None else f" of token {token.address}"
            per_tx, cap = ((p.eth.max_per_tx_wei, p.eth.daily_cap_wei) if token is None
                           else (token.max_per_tx, token.daily_cap))
            if amount > per_tx:
                return _refuse(f"over the per-transaction limit{what} for key {key_id}",
                               f"{asset}: {amount} > per-transaction limit {per_tx}")
            spent = self.state.spent_last_day(key_id, asset, now, besides=tx.digest.hex())
            if spent + amount > cap:
                return _refuse(f"over the daily cap{what} for key {key_id}",
                               f"{asset}: {spent} spent in 24 h + {amount} > daily cap {cap}")
        return Decision(True, spends=spends)

    @staticmethod
    def _spends(p: Policy, tx: Transaction) -> dict | Decision:
        """What tx moves per asset (value + max fee in ETH; a token call's amount), or the
        refusal of a recipient or call the policy does not allow."""
        if not tx.data:
            if tx.to.lower() not in {a.lower() for a in p.eth.recipients}:
                return _refuse(f"recipient {tx.to} is not allowed")
            return {ETH: tx.value + tx.max_fee}
        token = p.token(tx.chain_id, tx.to)
        if token is None and (contract := p.contract(tx.chain_id, tx.to)) is not None:
            return PolicyCheck._settlement_spends(contract, tx)
        if token is None:
            return _refuse(f"calls to {tx.to} are not allowed")
        if tx.value:
            return _refuse("a token call must carry no ETH value")
        try:
            call = decode_erc20(tx.data)
        except CalldataError as exc:
            return _refuse(f"calldata refused: {exc}")
        allowed = {"transfer": [("to", token.recipients)],
                   "approve": [("spender", token.spenders)],
                   "transferFrom": [("from", token.owners), ("to", token.recipients)]}
        for arg, listed in allowed[call.function]:
            if call.args[arg].lower() not in {a.lower() for a in listed}:
                return _refuse(f"{call.function} {arg} {call.args[arg]} is not allowed for"
                               f" token {token.address}")
        return {ETH: tx.max_fee, token.asset: call.amount}

    @staticmethod
    def _settlement_spends(contract: ContractRule, tx: Transaction) -> dict | Decision:
        """A settlement contract call: a listed function, canonically encoded, ETH only as
        a position's collateral; it spends its value and its fee."""
        try:
            call = decode_settlement(tx.data)
        except CalldataError as exc:
            return _refuse(f"calldata refused: {exc}")
        if call.function not in contract.functions:
            return _refuse(f"{call.function} is not allowed on contract {contract.address}")
        if tx.value and call.function not in PAYABLE:
            return _refuse(f"a {call.function} call must carry no ETH value")
        return {ETH: tx.value + tx.max_fee}

    def check_typed_data(self, domain: dict, primary_type: str, key_id: str) -> Decision:
        """Would this node sign EIP-712 data of `primary_type` in `domain` (its EIP712Domain
        fields) with key_id?  Only what a typed_data rule lists, exactly."""
        p = self.policy
        if p is None:
            return _refuse("this node has no valid signing policy",
                           f"{self.source}: {self.problem or 'no such file'}")
        if any(rule.allows(domain, primary_type, key_id) for rule in p.typed_data):
            return Decision(True)
        return _refuse(f"EIP-712 {primary_type} in domain {domain.get('name')!r} version"
                       f" {domain.get('version')!r} on chain {domain.get('chainId')} at"
                       f" {domain.get('verifyingContract')} is not allowed for key {key_id}")

    def reserve(self, tx: Transaction, key_id: str) -> Decision:
        """Check, and on acceptance record the spend and nonce durably (before the vote)."""
        decision = self.check(tx, key_id)
        if decision.accept:
            self.state.reserve(key_id, tx, decision.spends, time.time())
        return decision


_states: dict[Path, PolicyState] = {}
"""data directory -> its open policy state (one connection per node process)."""
_parsed: dict[Path, tuple[tuple, Policy]] = {}
"""policy file -> (its stat when parsed, the policy): parsing and validating the YAML took
about 1 ms, twice per signature (vote and start) on every node."""
SETTLED_S = 2.0
"""A file changed this recently is parsed every time: file times are coarser than the gap
between two quick writes of the same size."""


def _file_version(path: Path) -> tuple | None:
    """Changes whenever the file is replaced or written (inode, size, mtime and ctime in ns);
    None while it may still be changing unseen."""
    st = path.stat()
    if time.time() - max(st.st_mtime, st.st_ctime) < SETTLED_S:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def load_policy(ctx) -> PolicyCheck:
    """The node's current policy (re-read once the file changed, so edits apply to the next
    request) and state."""
    source = resolve(ctx.config_path, ctx.config.policy)
    data_dir = resolve(ctx.config_path, ctx.config.data_dir)
    state = _states.get(data_dir)
    if state is None:
        state = _states[data_dir] = PolicyState(data_dir / "policy_state.sqlite",
                                                legacy=data_dir / "policy_state.json")
    try:
        version = _file_version(source)
    except FileNotFoundError:
        return PolicyCheck(None, state, source)
    cached = _parsed.get(source)
    if version is not None and cached is not None and cached[0] == version:
        return PolicyCheck(cached[1], state, source)
    try:
        policy = load_yaml_model(source, Policy)
    except ConfigError as exc:
        return PolicyCheck(None, state, source, problem=str(exc))
    if version is not None:
        _parsed[source] = (version, policy)
    return PolicyCheck(policy, state, source)

"""Each operator's own signing policy, checked before its node contributes to a signature.

policy.yaml (path in node.yaml, default beside it):

    chain_ids: [11155111]
    recipients: ["0x…"]              # allowed `to` addresses
    selectors: ["0xa9059cbb"]        # allowed contract calls (first 4 bytes of data)
    allow_plain_transfers: true      # empty data
    max_value_wei: 1000000000000000000
    daily_cap_wei: 5000000000000000000   # rolling 24 h, per key

State (signed nonces per key and chain, recent spending) is kept in the node's data
directory and written atomically, so it survives restarts.  No policy file: nothing is signed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from keyshare.atomic import write_atomic

from .config import ConfigError, load_yaml_model, resolve
from .evm import Transaction

DAY_S = 24 * 3600


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    chain_ids: list[int] = Field(min_length=1)
    recipients: list[str] = Field(default_factory=list)
    selectors: list[str] = Field(default_factory=list)
    allow_plain_transfers: bool = True
    max_value_wei: int = Field(ge=0)
    daily_cap_wei: int = Field(ge=0)

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, v):
        for a in v:
            if not (isinstance(a, str) and a.startswith("0x") and len(a) == 42):
                raise ValueError(f"not an address: {a!r}")
        return [a.lower() for a in v]

    @field_validator("selectors")
    @classmethod
    def _selectors(cls, v):
        for s in v:
            if not (isinstance(s, str) and s.startswith("0x") and len(s) == 10):
                raise ValueError(f"a selector is 0x plus 4 bytes: {s!r}")
        return [s.lower() for s in v]


@dataclass(frozen=True)
class Decision:
    accept: bool
    reason: str = ""


class PolicyState:
    """Signed nonces and rolling spending, persisted as JSON."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.data = json.loads(self.path.read_text())
        except FileNotFoundError:
            self.data = {"nonces": {}, "spend": []}

    def nonce_used(self, key_id: str, chain_id: int, nonce: int) -> bool:
        return nonce in self.data["nonces"].get(f"{key_id}:{chain_id}", [])

    def spent_last_day(self, key_id: str, now: float) -> int:
        return sum(v for ts, k, v in self.data["spend"] if k == key_id and now - ts < DAY_S)

    def record(self, key_id: str, tx: Transaction, now: float) -> None:
        self.data["nonces"].setdefault(f"{key_id}:{tx.chain_id}", []).append(tx.nonce)
        self.data["spend"] = [e for e in self.data["spend"] if now - e[0] < DAY_S]
        self.data["spend"].append([now, key_id, tx.value])
        write_atomic(self.path, json.dumps(self.data).encode())


class PolicyCheck:
    """A node's policy together with its state."""

    def __init__(self, policy: Policy | None, state: PolicyState, source: Path):
        self.policy, self.state, self.source = policy, state, source

    def check(self, tx: Transaction, key_id: str) -> Decision:
        p, now = self.policy, time.time()
        if p is None:
            return Decision(False, f"no signing policy at {self.source}")
        if tx.chain_id not in p.chain_ids:
            return Decision(False, f"chain id {tx.chain_id} not allowed (allowed: {p.chain_ids})")
        if tx.to.lower() not in p.recipients:
            return Decision(False, f"recipient {tx.to} not allowed")
        if tx.data:
            selector = "0x" + tx.data[:4].hex()
            if selector not in p.selectors:
                return Decision(False, f"contract selector {selector} not allowed")
        elif not p.allow_plain_transfers:
            return Decision(False, "plain transfers (empty data) not allowed")
        if tx.value > p.max_value_wei:
            return Decision(False, f"value {tx.value} wei exceeds the per-transaction maximum"
                                   f" {p.max_value_wei}")
        spent = self.state.spent_last_day(key_id, now)
        if spent + tx.value > p.daily_cap_wei:
            return Decision(False, f"value {tx.value} wei would bring the last 24 h to"
                                   f" {spent + tx.value}, over the daily cap {p.daily_cap_wei}")
        if self.state.nonce_used(key_id, tx.chain_id, tx.nonce):
            return Decision(False, f"nonce {tx.nonce} on chain {tx.chain_id} was already signed"
                                   f" with key {key_id}")
        return Decision(True)

    def record(self, tx: Transaction, key_id: str) -> None:
        self.state.record(key_id, tx, time.time())


def load_policy(ctx) -> PolicyCheck:
    """The node's current policy (re-read, so edits apply to the next request) and state."""
    source = resolve(ctx.config_path, ctx.config.policy)
    state = PolicyState(resolve(ctx.config_path, ctx.config.data_dir) / "policy_state.json")
    if not source.exists():
        return PolicyCheck(None, state, source)
    try:
        return PolicyCheck(load_yaml_model(source, Policy), state, source)
    except ConfigError as exc:
        return PolicyCheck(None, state, Path(f"{source} (invalid: {exc})"))

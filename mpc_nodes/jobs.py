"""Job kinds: for each kind, its parameters, who may take part, the local checks a node makes
before it votes, and which protocol coroutine the session runs with which private arguments.

The coordinator uses the same parameter models, so a bad request is refused before it is sent.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keyshare import KeyStore, OneTimeSecrets

from .config import NodeConfig, PartyInfo, Roster, resolve
from .input_usage import InputReused, InputUsage, InputUse
from .inputs import INPUT_NAME, InputError, load_input


PRESIGNATURE_LIFETIME_S = 24 * 3600.0
MAX_PRESIGNATURES = MAX_NONCES = 10_000
"""Bounds of a node's in-memory one-time secrets (see keyshare.onetime)."""


class JobRejected(Exception):
    """This node will not take part in the job; the message is the reason it votes with."""


@dataclass
class NodeContext:
    """What a job kind may use on a node: its config, roster identity, files and key store."""

    roster: Roster
    party: PartyInfo
    config: NodeConfig
    config_path: Path
    passphrase: bytes

    def path(self, p: str) -> Path:
        return resolve(self.config_path, p)

    @functools.cached_property
    def keystore(self) -> KeyStore:
        return KeyStore(self.path(self.config.data_dir) / "keys", self.passphrase,
                        self.roster.cluster_id, self.party.index)

    @functools.cached_property
    def input_usage(self) -> InputUsage:
        """Which participant set and aggregation each private input version is bound to."""
        return InputUsage(self.path(self.config.data_dir) / "input_usage.sqlite")

    def bind_inputs(self, uses: list[InputUse],
                    participants: list[PartyInfo] | None = None) -> None:
        """Refuse (JobRejected) a use of private inputs that could combine with an earlier
        job's; with the participants (right before the session), also bind them durably."""
        try:
            if participants is None:
                self.input_usage.check(uses)
            else:
                self.input_usage.claim(uses, [p.name for p in participants])
        except InputReused as exc:
            raise JobRejected(str(exc)) from None

    @functools.cached_property
    def presignatures(self) -> OneTimeSecrets:
        """This node process's ECDSA presignatures: in memory only, gone when it stops."""
        return OneTimeSecrets("presignature", PRESIGNATURE_LIFETIME_S, MAX_PRESIGNATURES)

    @functools.cached_property
    def nonces(self) -> OneTimeSecrets:
        """This node process's FROST nonces: in memory only, living no longer than a request."""
        return OneTimeSecrets("nonce", self.roster.limits.max_request_ttl_s, MAX_NONCES)


@dataclass(frozen=True)
class SessionCall:
    """The protocol a party runs: target "protocols.module:function", its private arguments,
    the MPyC threshold (None: the largest the session allows, (m-1)//2), and for long jobs
    the time the protocol may take (None: the node's session_timeout_s)."""

    target: str
    args: list
    threshold: int | None = None
    timeout: float | None = None


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobKind:
    """Base class: override the hooks that differ."""

    name: ClassVar[str]
    params_model: ClassVar[type[_Params]]
    shared_output: ClassVar[bool] = True
    """True: every participant must report the same output.  False: each reports its own
    part (an encrypted output share, a signature share) in JobOutcome.party_outputs."""

    one_output_suffices: ClassVar[bool] = False
    """True: one output that the coordinator verifies on its own (a signature), reported alike
    by more than t participants, is the job's result even if other participants failed or
    were lost after it was produced (they are named in JobOutcome.party_notes)."""

    def verify_output(self, params, output: dict) -> str | None:
        """Why `output` is not a valid result of these parameters, None if it is; checked by
        the coordinator, without the parties' word, for kinds with one_output_suffices."""
        return "this kind's outputs cannot be verified on their own"

    def parse(self, params: dict) -> _Params:
        """Validate parameters; raise ValueError naming the bad field."""
        try:
            return self.params_model.model_validate(params)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"{self.name}: parameter {'.'.join(map(str, first['loc']))}:"
                             f" {first['msg']}") from None

    def min_parties(self, roster: Roster) -> int:
        """Fewest participants with which the job is safe: an honest majority above t
        (and never fewer than two: a joint computation needs someone to compute with)."""
        return max(2, 2 * roster.threshold + 1)

    def approvals_needed(self, roster: Roster) -> int:
        """Signed ACCEPT votes a start must carry, from participants or not (0: only the
        participants' own).  Signing needs the roster's policy quorum."""
        return 0

    def commit_params(self, params, output: dict) -> dict | None:
        """For a kind that stages a key epoch (keygen, refresh): the `key-commit` parameters
        that make it current, which the coordinator runs once every participant staged it
        (see `epochjobs`); None for other kinds."""
        return None

    def output_is_shared(self, params) -> bool:
        """Whether all participants report one agreed output for these parameters."""
        return self.shared_output

    def prepare(self, ctx: NodeContext, params) -> None:
        """Slow, thread-safe work before local_check and session_call (reading and parsing
        big files, to be cached): the node runs it in a worker thread, so that votes on
        other jobs keep flowing.  May raise JobRejected."""

    def local_check(self, ctx: NodeContext, params) -> None:
        """Raise JobRejected if this node cannot or will not take part."""

    def session_call(self, ctx: NodeContext, params,
                     participants: list[PartyInfo]) -> SessionCall | None:
        """What this party runs in the session, at execution time (checks may be repeated
        here: raise JobRejected); None for a job that needs no MPC session."""
        raise NotImplementedError

    def finish(self, ctx: NodeContext, params, output, participants: list[PartyInfo]) -> dict:
        """Persist what must be kept and return the public result this node reports."""
        return output


class AggregateParams(_Params):
    input: str = Field(pattern=INPUT_NAME.pattern)
    method: Literal["median", "mean"] = "median"


class Aggregate(JobKind):
    """Median or mean of one private number per party; only the aggregate is revealed."""

    name = "aggregate"
    params_model = AggregateParams

    def _value(self, ctx: NodeContext, params: AggregateParams) -> float:
        try:
            return load_input(ctx.path(ctx.config.inputs), params.input)
        except InputError as exc:
            raise JobRejected(str(exc)) from None

    @staticmethod
    def _use(params: AggregateParams, value: float) -> InputUse:
        # the number itself is the version (under any name): 0.0 and -0.0 are one number
        return InputUse(f"private input {params.input!r}",
                        b"number\0" + (value + 0.0).hex().encode(), params.method)

    def local_check(self, ctx, params):
        ctx.bind_inputs([self._use(params, self._value(ctx, params))])

    def session_call(self, ctx, params, participants):
        value = self._value(ctx, params)
        ctx.bind_inputs([self._use(params, value)], participants)
        return SessionCall("protocols.aggregate:aggregate", [value, params.method])

    def finish(self, ctx, params, output, participants):
        return {"input": params.input, "method": params.method, "value": output}


class PingParams(_Params):
    rounds: int = Field(default=20, ge=1, le=10_000)


class Ping(JobKind):
    """Open a session and run sequential rounds: checks reachability, measures round latency."""

    name = "ping"
    params_model = PingParams

    def min_parties(self, roster):
        return 2  # no private data is involved

    def session_call(self, ctx, params, participants):
        return SessionCall("protocols.diagnostics:rounds", [params.rounds])


def _all_kinds() -> list[JobKind]:
    from .epochjobs import EPOCH_JOBS
    from .frostjobs import FROST_JOBS  # key jobs build on the kinds above
    from .keyjobs import KEY_JOBS
    from .pricejobs import PRICE_JOBS
    return [Aggregate(), Ping(), *KEY_JOBS, *EPOCH_JOBS, *FROST_JOBS, *PRICE_JOBS]


KINDS: dict[str, JobKind] = {k.name: k for k in _all_kinds()}


def kind_for(name: str) -> JobKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown job kind {name!r}; known: {', '.join(sorted(KINDS))}") from None

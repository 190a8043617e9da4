"""Job kinds: for each kind, its parameters, who may take part, the local checks a node makes
before it votes, and which protocol coroutine the session runs with which private arguments.

The coordinator uses the same parameter models, so a bad request is refused before it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from mpc_nodes.config import PartyInfo, Roster
from mpc_nodes.node.context import JobRejected, NodeContext


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

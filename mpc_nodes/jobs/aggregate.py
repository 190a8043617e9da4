"""Jobs on one private number per party: its median or mean, and a reachability ping."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

import protocols.aggregate
import protocols.aggregate_active
import protocols.diagnostics

from mpc_nodes.jobs.kind import JobRejected, MpcSession, NodeContext, SessionKind, _Params
from mpc_nodes.node.input_usage import InputUse
from mpc_nodes.node.inputs import INPUT_NAME, InputError, load_input


class AggregateParams(_Params):
    input: str = Field(pattern=INPUT_NAME.pattern)
    method: Literal["median", "mean"] = "median"


class Aggregate(SessionKind[AggregateParams, None]):
    """Median or mean of one private number per party; only the aggregate is revealed."""

    name = "aggregate"
    params_model = AggregateParams
    active_secure = True  # protocols.aggregate_active under security: malicious

    def _value(self, ctx: NodeContext, params: AggregateParams) -> float:
        try:
            value = load_input(ctx.path(ctx.config.inputs), params.input)
        except InputError as exc:
            raise JobRejected(str(exc)) from None
        if ctx.roster.security == "malicious":
            try:
                protocols.aggregate_active.fixed(value)
            except ValueError as exc:
                raise JobRejected(f"private input {params.input!r}: {exc}") from None
        return value

    @staticmethod
    def _use(params: AggregateParams, value: float) -> InputUse:
        # the number itself is the version (under any name): 0.0 and -0.0 are one number
        return InputUse(f"private input {params.input!r}",
                        b"number\0" + (value + 0.0).hex().encode(), params.method)

    def check_vote(self, ctx, job):
        ctx.bind_inputs([self._use(job.params, self._value(ctx, job.params))])

    def plan(self, ctx, job):
        value = self._value(ctx, job.params)  # the file as it is now: this value is bound
        ctx.bind_inputs([self._use(job.params, value)], job.participants)
        if ctx.roster.security == "malicious":
            return MpcSession(protocols.aggregate_active.aggregate,
                              [value, job.params.method, [p.name for p in job.participants]])
        return MpcSession(protocols.aggregate.aggregate, [value, job.params.method])

    def complete(self, ctx, job, output):
        return {"input": job.params.input, "method": job.params.method, "value": output}


class PingParams(_Params):
    rounds: int = Field(default=20, ge=1, le=10_000)


class Ping(SessionKind[PingParams, None]):
    """Open a session and run sequential rounds: checks reachability, measures round latency."""

    name = "ping"
    params_model = PingParams
    active_secure = True  # no private data, and its output decides nothing: a cheating
    # party can only slow the rounds (which ping measures) or change a constant nobody uses

    def min_parties(self, roster):
        return 2  # no private data is involved

    def plan(self, ctx, job):
        return MpcSession(protocols.diagnostics.rounds, [job.params.rounds])

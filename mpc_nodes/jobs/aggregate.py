"""Jobs on one private number per party: its median or mean, and a reachability ping."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mpc_nodes.jobs.kind import JobKind, JobRejected, NodeContext, SessionCall, _Params
from mpc_nodes.node.input_usage import InputUse
from mpc_nodes.node.inputs import INPUT_NAME, InputError, load_input


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

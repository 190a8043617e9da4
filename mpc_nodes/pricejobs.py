"""The "price" job: options priced at the aggregate of the parties' private volatilities.

Each node interpolates its own surface (mpc_nodes.volsurface) at execution time and feeds
those vols to protocols.pricing.price as its private input.  Everything checkable is
checked before any MPC runs: the parameters by the model below (on the coordinator too),
the surface and the vols by every node before it votes.
"""

from __future__ import annotations

import functools
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from protocols import domain
from protocols.bsm import denormalise
from protocols.domain import SECURE_LIMIT_MAX

from .input_usage import InputUse
from .jobs import JobKind, JobRejected, NodeContext, SessionCall, _Params
from .options_csv import MAX_QUANTITY
from .output_shares import seal_share
from .volsurface import UNDERLYING, NoSurface, Surface, SurfaceBook, SurfaceError

Finite = Annotated[float, Field(allow_inf_nan=False)]
MAX_OPTIONS_PER_JOB = 20_000  # request and results stay well inside the 4 MiB message limit


def session_seconds(options: int) -> float:
    """Time a price session may take: generous for the slowest case measured (five parties,
    secure evaluation, about 45 options/s on a 2-core machine)."""
    return 60.0 + options / 20.0


class PriceParams(_Params):
    underlying: str = Field(pattern=UNDERLYING.pattern)
    spot: Finite = Field(gt=0)
    # the domain of protocols.domain: outside it a fixed-point value could outgrow its mask
    rate: Finite = Field(ge=-domain.RATE_MAX, le=domain.RATE_MAX)
    dividend: Finite = Field(default=0.0, ge=-domain.RATE_MAX, le=domain.RATE_MAX)
    is_call: list[bool] = Field(min_length=1, max_length=MAX_OPTIONS_PER_JOB)
    strikes: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]]
    expiries: list[Annotated[float, Field(ge=domain.EXPIRY_MIN, le=domain.EXPIRY_MAX,
                                          allow_inf_nan=False)]]
    quantities: list[Annotated[float, Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY,
                                            allow_inf_nan=False)]] | None = None
    greeks: bool = False
    method: Literal["median", "mean", "trimmed"] = "median"
    reveal: Literal["all", "coordinator"] = "all"
    recipient: str | None = Field(default=None, description="coordinator, for reveal=coordinator")
    portfolio: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "PriceParams":
        m = len(self.is_call)
        if len(self.strikes) != m or len(self.expiries) != m:
            raise ValueError("is_call, strikes and expiries need one entry per option")
        if self.quantities is not None and len(self.quantities) != m:
            raise ValueError("quantities need one entry per option")
        if self.portfolio and self.quantities is None:
            raise ValueError("a portfolio needs quantities")
        if (self.reveal == "coordinator") != (self.recipient is not None):
            raise ValueError("reveal=coordinator needs a recipient, and only it does")
        try:
            domain.check(self.strikes, self.expiries, self.spot, self.rate, self.dividend)
        except domain.DomainError as exc:
            raise ValueError(str(exc)) from None
        return self


class Price(JobKind):
    """Joint BSM prices (and Greeks) from secret-shared private vols; only outputs leave."""

    name = "price"
    params_model = PriceParams

    def output_is_shared(self, params: PriceParams) -> bool:
        return params.reveal == "all"

    @staticmethod
    @functools.cache
    def _book(directory: str) -> SurfaceBook:
        return SurfaceBook(directory)

    def _vols(self, ctx: NodeContext, params: PriceParams) -> tuple[list[float], InputUse]:
        """This node's vols for the options, and the surface they come from as an input use."""
        book = self._book(str(ctx.path(ctx.config.data_dir) / "surfaces"))
        try:
            surface = book.get(params.underlying)
        except NoSurface as exc:
            raise JobRejected(str(exc)) from None
        except SurfaceError:  # its message may quote surface values: it stays in the log
            raise JobRejected(f"the {params.underlying} surface file is invalid (the node's"
                              " log says why)") from None
        vols = surface.vol(params.strikes, params.expiries, params.spot)
        if not np.all(np.isfinite(vols)):
            raise JobRejected(f"the {params.underlying} surface gives non-finite vols")
        return [float(v) for v in vols], surface_use(surface, params)

    def prepare(self, ctx, params):
        self._vols(ctx, params)  # parses a changed surface file into the book's cache

    def local_check(self, ctx, params):
        if params.recipient is not None and ctx.roster.coordinator(params.recipient) is None:
            raise JobRejected(f"recipient {params.recipient!r} is not a roster coordinator")
        limit = ctx.roster.limits.vol_spread_limit
        if params.method != "median" and limit > SECURE_LIMIT_MAX:  # (even median: session)
            raise JobRejected(f"the cluster's vol_spread_limit {limit:g} is too loose for"
                              f" {params.method} aggregation (needs <= {SECURE_LIMIT_MAX})")
        ctx.bind_inputs([self._vols(ctx, params)[1]])

    def session_call(self, ctx, params, participants):
        vols, use = self._vols(ctx, params)
        ctx.bind_inputs([use], participants)
        public = {
            "spot": params.spot, "rate": params.rate, "dividend": params.dividend,
            "is_call": params.is_call, "strikes": params.strikes, "expiries": params.expiries,
            "quantities": params.quantities, "greeks": params.greeks,
            "portfolio": params.portfolio, "method": params.method,
            "limit": ctx.roster.limits.vol_spread_limit, "reveal": params.reveal,
        }
        return SessionCall("protocols.pricing:price", [vols, public],
                           timeout=session_seconds(len(params.strikes)))

    def finish(self, ctx, params, output, participants):
        result = {"underlying": params.underlying, "options": len(params.strikes),
                  "method": params.method, "breached": output["breached"],
                  "limit": ctx.roster.limits.vol_spread_limit}
        if output.get("share") is not None:
            coordinator = ctx.roster.coordinator(params.recipient)
            return result | {"sealed_share": seal_share(output["share"],
                                                        coordinator.identity_key),
                             "scale_bits": output["scale_bits"]}
        return result | values_from_rows(params, output["rows"], output["scale_bits"])


def surface_use(surface: Surface, params: PriceParams) -> InputUse:
    """A surface's version is its grid (the numbers, not the file's formatting); options,
    spot, Greeks, portfolio and reveal mode only choose where and to whom the one
    aggregate surface is evaluated, so the aggregation is the method alone."""
    grid = b"".join(np.ascontiguousarray(a, dtype="<f8").tobytes() for a in  # (the shape
                    (np.array(surface.vols.shape, dtype=float), surface.expiries,  # first
                     surface.points, surface.vols))  # fixes where each array ends)
    return InputUse(f"the {params.underlying} surface", b"surface\0" + surface.axis.encode()
                    + b"\0" + grid, params.method)


def values_from_rows(params: PriceParams, rows, scale_bits: int) -> dict:
    """Revealed integer rows (or totals) -> named floats, in the options' units."""
    if rows is None:  # a portfolio with a breached option: nothing was revealed
        return {"values": None}
    rows = [[v / 2 ** scale_bits for v in row] for row in (rows if not params.portfolio
                                                           else [[x] for x in rows])]
    values = denormalise(rows, params.spot, params.greeks) if rows else {}
    if params.portfolio:
        return {"portfolio": {k: v[0] for k, v in values.items()}}
    return {"values": values}


def rows_from_flat(flat: list[int], shape: list[int], portfolio: bool):
    """Reconstructed flat integers back into the protocol's row layout."""
    if portfolio:
        return flat
    width = shape[1] if len(shape) > 1 else 0
    return [flat[i * width:(i + 1) * width] for i in range(shape[0])]


PRICE_JOBS = [Price()]

"""The one pydantic base of mpcnet's models (configuration, bus messages, job parameters,
policies, price reports): a field nobody declared is an error, and a validated value cannot
change afterwards.  keyshare keeps its own base (keyshare never imports mpc_nodes)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown fields are refused and instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StrictTypedModel(StrictModel):
    """A StrictModel that also refuses type coercion ("1" for 1, 1.0 for True): for data an
    operator writes by hand or a party signs, where a coerced value would hide a mistake."""

    model_config = ConfigDict(strict=True)

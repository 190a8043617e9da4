"""Every job kind by name: the one list the node and the coordinator look kinds up in."""

from __future__ import annotations

from mpc_nodes.jobs.aggregate import Aggregate, Ping
from mpc_nodes.jobs.ecdsa import KEY_JOBS
from mpc_nodes.jobs.epochs import EPOCH_JOBS
from mpc_nodes.jobs.frost import FROST_JOBS
from mpc_nodes.jobs.kind import JobKind
from mpc_nodes.jobs.marks import MARK_JOBS
from mpc_nodes.jobs.pricing import PRICE_JOBS
from mpc_nodes.jobs.reshare import RESHARE_JOBS

KINDS: dict[str, JobKind] = {k.name: k for k in
                             [Aggregate(), Ping(), *KEY_JOBS, *EPOCH_JOBS, *FROST_JOBS, *PRICE_JOBS,
                              *MARK_JOBS, *RESHARE_JOBS]}


def kind_for(name: str) -> JobKind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown job kind {name!r}; known: {', '.join(sorted(KINDS))}") from None

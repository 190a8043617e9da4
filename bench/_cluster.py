"""Shared by the benchmarks: a throwaway local cluster (supervisor, embedded broker or an
external one, real node processes) and percentiles."""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mpc_nodes.client.coordinator import Coordinator  # noqa: E402
from mpc_nodes.deploy.cluster import (init_cluster, start_supervisor, stop_cluster,  # noqa: E402
                                      wait_for_state)


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


@contextlib.contextmanager
def local_cluster(parties: int, broker: str | None = None, threshold: int | None = None,
                  prepare=lambda cluster_dir: None):
    """Yield (cluster_dir, broker_url) of a running cluster; stop it afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster_dir = Path(tmp) / "cluster"
        init_cluster(cluster_dir, parties, (parties - 1) // 2 if threshold is None else threshold)
        prepare(cluster_dir)
        pid = start_supervisor(cluster_dir, broker)
        try:
            yield cluster_dir, wait_for_state(cluster_dir, pid).broker
        finally:
            stop_cluster(cluster_dir)


@contextlib.asynccontextmanager
async def online_coordinator(cluster_dir: Path, broker: str):
    """A connected coordinator, once every party is online."""
    async with Coordinator(cluster_dir / "coordinator" / "coordinator.yaml", broker) as c:
        while len(c.online()) < c.roster.n:
            await c.status(wait=0.2)
        yield c

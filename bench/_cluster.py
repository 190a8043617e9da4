"""Shared by the benchmarks: a throwaway local cluster (supervisor, embedded broker or an
external one, real node processes), percentiles, and the CPU its processes use."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mpc_nodes.client.coordinator import Coordinator  # noqa: E402
from mpc_nodes.deploy.cluster import (RunState, init_cluster, start_supervisor,  # noqa: E402
                                      stop_cluster, wait_for_state)
from mpc_nodes.onboarding import NEW_SECURITY  # noqa: E402


def cluster_cpu(root: int | None = None) -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process and every process it started,
    by role: coordinator (this process), broker (the supervisor, which runs the embedded
    broker), node, engine.  On a shared machine CPU per job is steadier than wall time.
    `root` (a cluster's supervisor pid): that process and its descendants only, and this
    process as coordinator, for clusters run side by side."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[str, list[str]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        children.setdefault(stat[stat.rindex(")") + 2:].split()[1], []).append(pid)
    me = str(os.getpid())
    used: dict[str, float] = {}
    todo = [me] if root is None else [me, str(root)]
    while todo:
        pid = todo.pop()
        if pid != me or root is None:
            todo += children.get(pid, [])
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            fields = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = fields[fields.rindex(")") + 2:].split()
        role = ("coordinator" if pid == me else "engine" if "engine_worker" in cmd
                else "node" if " node " in cmd else "broker" if "supervise" in cmd else "other")
        used[role] = used.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return used


def cpu_per_job(before: dict[str, float], after: dict[str, float], jobs: int) -> dict:
    """Seconds of CPU per job by role between two cluster_cpu() readings."""
    return {role: (after[role] - before.get(role, 0.0)) / jobs for role in after}


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


@contextlib.contextmanager
def local_cluster(parties: int, broker: str | None = None, threshold: int | None = None,
                  prepare=lambda cluster_dir: None, security: str = NEW_SECURITY):
    """Yield (cluster_dir, broker_url) of a running cluster; stop it afterwards.  `security`:
    the roster's mode (a new cluster's default: malicious)."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster_dir = Path(tmp) / "cluster"
        init_cluster(cluster_dir, parties, (parties - 1) // 2 if threshold is None else threshold,
                     security=security)
        prepare(cluster_dir)
        pid = start_supervisor(cluster_dir, broker)
        try:
            yield cluster_dir, wait_for_state(cluster_dir, pid).broker
        finally:
            stop_cluster(cluster_dir)


@contextlib.contextmanager
def clusters_by_mode(parties: int, modes, broker: str | None = None,
                     prepare=lambda cluster_dir: None):
    """One running cluster of `parties` per security mode, side by side: yield {mode:
    (cluster_dir, broker_url, supervisor pid)} (the pid for cluster_cpu(root))."""
    with contextlib.ExitStack() as stack:
        out = {}
        for mode in modes:
            cluster_dir, url = stack.enter_context(
                local_cluster(parties, broker, prepare=prepare, security=mode))
            out[mode] = (cluster_dir, url, RunState.load(cluster_dir).supervisor_pid)
        yield out


@contextlib.asynccontextmanager
async def online_coordinator(cluster_dir: Path, broker: str):
    """A connected coordinator, once every party is online."""
    async with Coordinator(cluster_dir / "coordinator" / "coordinator.yaml", broker) as c:
        while len(c.online()) < c.roster.n:
            await c.status(wait=0.2)
        yield c

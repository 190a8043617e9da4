"""Issue 11 item 6: the death of the supervisor (which hosts the embedded broker) does not
orphan the cluster.  Killed with SIGKILL, it used to leave its nodes running; `cluster down`
then said "no running cluster here" and `cluster up` started a second set beside them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mpc_nodes.deploy.cluster import RunState
from tests.cluster_harness import wait_until

pytestmark = pytest.mark.e2e


def mpcnet(*args, timeout=90):
    return subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *args], capture_output=True,
                          text=True, timeout=timeout)


def node_pids(cluster_dir: Path) -> dict[int, str]:
    """Every node process of this cluster on the machine (read from /proc, not from the
    cluster's own records), pid -> party; stopped ones included, zombies not."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        config = [a.decode() for a in argv if a.endswith(b"node.yaml")]
        if b"node" in argv and config and state != "Z" and \
                Path(config[0]).parent.parent == cluster_dir.resolve():
            found[int(proc.name)] = Path(config[0]).parent.name
    return found


@pytest.fixture
def cluster_dir(tmp_path):
    d = tmp_path / "cluster"
    assert mpcnet("init", "-n", "3", "-t", "1", "--out", str(d)).returncode == 0
    yield d
    mpcnet("cluster", "down", "--dir", str(d))
    for pid in node_pids(d):  # never leave processes behind, whatever the outcome
        os.kill(pid, signal.SIGKILL)


def supervisor_pid(cluster_dir: Path) -> int:
    return RunState.load(cluster_dir).supervisor_pid


@pytest.mark.timeout(180)
async def test_killed_supervisor_takes_its_nodes_and_down_stops_orphans(cluster_dir):
    up = mpcnet("cluster", "up", "--dir", str(cluster_dir), "--json")
    assert up.returncode == 0, up.stderr
    await wait_until(lambda: len(node_pids(cluster_dir)) == 3, 60, "3 node processes")

    # the supervisor dies: its nodes go with it
    os.kill(supervisor_pid(cluster_dir), signal.SIGKILL)
    killed = time.monotonic()
    await wait_until(lambda: not node_pids(cluster_dir), 30, "the nodes exit with their supervisor")
    print(f"nodes gone {time.monotonic() - killed:.2f}s after the supervisor's SIGKILL")

    again = mpcnet("cluster", "up", "--dir", str(cluster_dir), "--json")
    assert again.returncode == 0, again.stderr
    await wait_until(lambda: len(node_pids(cluster_dir)) == 3, 60, "3 node processes")

    # a node that cannot act on its supervisor's death (stopped) outlives it: an orphan
    orphan, = [pid for pid, party in node_pids(cluster_dir).items() if party == "party0"]
    os.kill(orphan, signal.SIGSTOP)
    os.kill(supervisor_pid(cluster_dir), signal.SIGKILL)
    await wait_until(lambda: set(node_pids(cluster_dir)) == {orphan}, 30,
                     "only the stopped node left")

    procs = json.loads(mpcnet("cluster", "procs", "--dir", str(cluster_dir), "--json").stdout)
    assert procs["orphans"] == ["party0"]
    refused = mpcnet("cluster", "up", "--dir", str(cluster_dir))
    assert refused.returncode == 2
    assert f"party0 (pid {orphan})" in refused.stderr and "cluster down" in refused.stderr
    assert set(node_pids(cluster_dir)) == {orphan}  # never a second set beside it

    t = time.monotonic()
    down = mpcnet("cluster", "down", "--dir", str(cluster_dir))
    print(f"cluster down stopped the orphan in {time.monotonic() - t:.2f}s (CLI included)")
    assert down.returncode == 0 and f"party0 (pid {orphan})" in down.stdout
    assert not node_pids(cluster_dir)

    third = mpcnet("cluster", "up", "--dir", str(cluster_dir), "--json")
    assert third.returncode == 0, third.stderr
    assert sorted(node_pids(cluster_dir).values()) == ["party0", "party1", "party2"]

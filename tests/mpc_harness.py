"""Run a protocol coroutine in N real MPyC party processes over loopback (no bus, no TLS).

Protocol tests use this to check that every party runs the same program and gets the
same answer.  Each party is a separate ``python`` process that builds a fresh runtime
with :func:`mpc_nodes.node.mpyc_runtime.new_runtime`, starts it on plain TCP, awaits
``target(rt, *args)`` and prints the JSON result.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mpc_nodes.deploy.cluster import free_port

PARTY_SCRIPT = Path(__file__).with_name("_mpc_party.py")
ROOT = Path(__file__).resolve().parent.parent


def free_ports(n: int) -> list[int]:
    """Return n distinct free TCP ports on 127.0.0.1, outside the ephemeral range."""
    ports: list[int] = []
    while len(ports) < n:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def run_parties(target: str, per_party_args: list[list], timeout: float = 60.0,
                threshold: int | None = None, tolerate: frozenset = frozenset()) -> list:
    """Run ``target`` ("package.module:function") in len(per_party_args) processes.

    Returns each party's JSON-decoded return value, in party order.  Raises
    RuntimeError with the failing party's stderr if any party fails or times out, except
    the parties in ``tolerate`` (e.g. a deviating one whose peers stopped), whose result is
    then None.  A tolerated party still running once every other one has finished is
    stopped then: its peers are gone, it could only wait for them in vain.
    """
    m = len(per_party_args)
    ports = free_ports(m)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    procs = []
    specs = tempfile.TemporaryDirectory(prefix="mpc-specs-")  # args can exceed argv limits
    for pid, args in enumerate(per_party_args):
        spec = Path(specs.name) / f"party{pid}.json"
        spec.write_text(json.dumps({"pid": pid, "ports": ports, "target": target, "args": args,
                                    "threshold": threshold}))
        procs.append(subprocess.Popen([sys.executable, str(PARTY_SCRIPT), str(spec)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                                      text=True))
    results, errors = [None] * m, []
    try:
        for pid in sorted(range(m), key=lambda pid: pid in tolerate):  # the tolerated last
            p = procs[pid]
            if pid in tolerate and p.poll() is None:
                p.kill()
            try:
                out, err = p.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                out, err = "", f"party {pid} timed out after {timeout}s"
            lines = out.strip().splitlines() if p.returncode == 0 else []
            if lines:
                results[pid] = json.loads(lines[-1])
            elif pid not in tolerate:
                errors.append(f"party {pid} exited {p.returncode}:\n{err[-4000:]}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        specs.cleanup()
    if errors:
        raise RuntimeError("\n".join(errors))
    return results

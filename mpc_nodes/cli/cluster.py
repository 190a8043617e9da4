"""Cluster commands: `init` a cluster directory, run a `node`, and run a whole local
`cluster` (up, down, procs) with its embedded `broker`."""

from __future__ import annotations

from pathlib import Path

import click

from mpc_nodes.cli.common import (call, common_broker, common_dir, common_json, console, err,
                                  exits, fail, print_json, styled)
from mpc_nodes.config import SECURITY_MODES
from mpc_nodes.onboarding import NEW_SECURITY


@click.command()
@click.option("--parties", "-n", type=int, required=True, help="number of parties (>= 2)")
@click.option("--threshold", "-t", type=int, required=True,
              help="colluders tolerated, 1 <= t < n/2")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="new cluster dir")
@click.option("--host", default="127.0.0.1", show_default=True, help="host the parties use")
@click.option("--base-port", type=int, help="MPC ports base (default: free ports)")
@common_broker
@click.option("--cluster-id", help="cluster id (default: random)")
@click.option("--security", type=click.Choice(SECURITY_MODES), default=NEW_SECURITY,
              show_default=True, help="the adversary every MPC job must withstand;"
              " semi-honest costs less (docs/OPERATOR.md)")
@click.option("--emit", type=click.Choice(["deploy"]),
              help="also write OUT/deploy: a docker-compose project (Mosquitto with TLS and"
                   " ACL, one container per party, a coordinator)")
@common_json
def init(parties, threshold, out, host, base_port, broker, cluster_id, security, emit, as_json):
    """One-machine shortcut: a cluster directory with every operator's keys and configs, a
    signed roster, a coordinator.

    For local clusters and the demo; operators on separate machines use `mpcnet operator
    init` and `mpcnet roster` instead (docs/OPERATOR.md)."""
    from mpc_nodes.deploy.cluster import init_cluster
    with exits(also=(OSError,)):
        roster = init_cluster(out, parties, threshold, host=host, base_port=base_port,
                              broker=broker or ("mqtts://mosquitto:8883" if emit else None),
                              cluster_id=cluster_id, security=security)
        deployed = None
        if emit:
            from mpc_nodes.deploy.compose import emit_compose
            deployed = emit_compose(out, Path(out) / "deploy")
    if as_json:
        print_json({"cluster_id": roster.cluster_id, "dir": str(out), "n": roster.n,
                    "threshold": roster.threshold, "security": roster.security,
                    "deploy": deployed,
                    "parties": [{"name": p.name, "mpc": f"{p.host}:{p.mpc_port}"}
                                for p in roster.parties]})
        return
    console.print(styled("created cluster ", (roster.cluster_id, "bold"),
                         f" in {out}: {roster.n} parties, threshold {roster.threshold},"
                         f" security {roster.security}"))
    if deployed:
        console.print(f"wrote {deployed['compose']}; next: cd {Path(out) / 'deploy'} &&"
                      " docker compose up -d --build &&"
                      " docker compose run --rm coordinator mpcnet demo-jobs", markup=False)
    else:
        console.print(f"next: mpcnet cluster up --dir {out}", markup=False)


@click.command()
@click.option("--config", type=click.Path(path_type=Path, exists=True), required=True,
              help="this party's node.yaml")
@common_broker
def node(config, broker):
    """Run one party as a daemon until SIGTERM/SIGINT."""
    from mpc_nodes.node.daemon import run_node
    with exits():
        run_node(config, broker)


@click.group()
def cluster():
    """Run a whole cluster on this machine (embedded broker + one process per party)."""


@cluster.command("up")
@common_dir
@common_broker
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="seconds to wait until every party is online")
@common_json
def cluster_up(cluster_dir, broker, timeout, as_json):
    """Start the broker (unless --broker) and all parties; wait until they are online."""
    from mpc_nodes.deploy.cluster import start_supervisor, stop_cluster, wait_for_state
    with exits():
        pid = start_supervisor(cluster_dir, broker)
        state = wait_for_state(cluster_dir, pid)
    if not as_json:
        err.print(styled((f"… supervisor {pid} started, broker {state.broker}; waiting for"
                          " parties", "dim")))

    async def wait_online(net):
        return await net.wait_for_parties(timeout)
    status = call(cluster_dir, None, state.broker, True, wait_online)
    if len(status.online) < len(status.parties):
        stop_cluster(cluster_dir)
        fail(f"not all parties came online within {timeout:g}s; see"
             f" {cluster_dir}/party*/node.log")
    if as_json:
        print_json({"supervisor_pid": pid, "broker": state.broker,
                    "parties": sorted(status.online)})
    else:
        console.print(f"cluster up: {len(status.online)} parties online via {state.broker}",
                      markup=False)


@cluster.command("down")
@common_dir
def cluster_down(cluster_dir):
    """Stop every process of a cluster started with `cluster up`, even without its
    supervisor."""
    from mpc_nodes.deploy.cluster import stop_cluster
    stopped = stop_cluster(cluster_dir)
    if stopped:
        console.print(f"cluster stopped: {', '.join(stopped)}", markup=False)
    else:
        console.print("no running cluster here")


@cluster.command("procs")
@common_dir
@common_json
def cluster_procs(cluster_dir, as_json):
    """The processes of a cluster started here that still run, and orphans (nodes whose
    supervisor is gone: `cluster down` stops them)."""
    from mpc_nodes.deploy.cluster_procs import live
    running = live(cluster_dir)
    orphaned = [] if any(p.name == "supervisor" for p in running) else running
    if as_json:
        print_json({"running": [p.__dict__ for p in running],
                    "orphans": [p.name for p in orphaned]})
        return
    for p in running:
        console.print(styled(str(p), (" orphan" if p in orphaned else "", "bold red")))
    if not running:
        console.print("no running cluster here")
    elif orphaned:
        err.print("these processes run without their supervisor: run mpcnet cluster down")


@cluster.command("supervise", hidden=True)
@common_dir
@common_broker
def cluster_supervise(cluster_dir, broker):
    from mpc_nodes.deploy.supervisor import run_supervisor
    run_supervisor(cluster_dir, broker)


@click.command(hidden=True)
@common_dir
def broker(cluster_dir):
    """Run only the embedded broker of a cluster directory (for development and tests)."""
    from mpc_nodes.deploy.supervisor import run_broker
    run_broker(cluster_dir)

"""The `mpcnet` command line: cluster set-up, the node daemon, and coordinator commands.

Every coordinator command takes --json for scripts.  Exit status: 0 success, 1 the job
failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from mpc_nodes import __version__
from mpc_nodes.cli.common import (USER_ERRORS, _broker, _coordinate, _coordinator_config, _fail,
                                  _progress, _report, common_broker, common_coord, common_dir,
                                  common_json, console, err)
from mpc_nodes.wire.bus import BusUnavailable
from mpc_nodes.deploy.cluster import (ClusterError, RunState, init_cluster, start_supervisor, stop_cluster,
                      wait_for_state)
from mpc_nodes.node.codedigest import code_digest
from mpc_nodes.config import ConfigError
from mpc_nodes.client.coordinator import Coordinator, CoordinatorError, JobOutcome
from mpc_nodes.pki import KeyFileError

@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mpcnet")
@click.option("--log-level", default=os.environ.get("MPCNET_LOG_LEVEL", "WARNING"),
              show_default=True, help="DEBUG, INFO, WARNING, ERROR")
def main(log_level):
    """mpcnet: a multi-party computation network for decentralised derivatives."""
    logging.basicConfig(level=log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    os.environ["MPCNET_LOG_LEVEL"] = log_level.upper()


@main.command()
@click.option("--parties", "-n", type=int, required=True, help="number of parties (>= 2)")
@click.option("--threshold", "-t", type=int, required=True,
              help="colluders tolerated, 1 <= t < n/2")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="new cluster dir")
@click.option("--host", default="127.0.0.1", show_default=True, help="host the parties use")
@click.option("--base-port", type=int, help="MPC ports base (default: free ports)")
@common_broker
@click.option("--cluster-id", help="cluster id (default: random)")
@click.option("--emit", type=click.Choice(["deploy"]),
              help="also write OUT/deploy: a docker-compose project (Mosquitto with TLS and"
                   " ACL, one container per party, a coordinator)")
@common_json
def init(parties, threshold, out, host, base_port, broker, cluster_id, emit, as_json):
    """Create a cluster directory: roster, CA, per-party keys and configs, a coordinator."""
    try:
        roster = init_cluster(out, parties, threshold, host=host, base_port=base_port,
                              broker=broker or ("mqtts://mosquitto:8883" if emit else None),
                              cluster_id=cluster_id)
        deployed = None
        if emit:
            from mpc_nodes.deploy.compose import emit_compose
            deployed = emit_compose(out, Path(out) / "deploy")
    except (*USER_ERRORS, OSError) as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps({"cluster_id": roster.cluster_id, "dir": str(out), "n": roster.n,
                          "threshold": roster.threshold, "deploy": deployed,
                          "parties": [{"name": p.name, "mpc": f"{p.host}:{p.mpc_port}"}
                                      for p in roster.parties]}, indent=2))
        return
    console.print(f"created cluster [bold]{roster.cluster_id}[/] in {out}: {roster.n} parties,"
                  f" threshold {roster.threshold}")
    if deployed:
        console.print(f"wrote {deployed['compose']}; next: cd {Path(out) / 'deploy'} &&"
                      " docker compose up -d --build &&"
                      " docker compose run --rm coordinator mpcnet demo-jobs")
    else:
        console.print(f"next: mpcnet cluster up --dir {out}")


@main.command()
@click.option("--config", type=click.Path(path_type=Path, exists=True), required=True,
              help="this party's node.yaml")
@common_broker
def node(config, broker):
    """Run one party as a daemon until SIGTERM/SIGINT."""
    from mpc_nodes.node.daemon import run_node
    try:
        run_node(config, broker)
    except USER_ERRORS as exc:
        _fail(str(exc))


@main.group()
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
    try:
        pid = start_supervisor(cluster_dir, broker)
        state = wait_for_state(cluster_dir, pid)
    except USER_ERRORS as exc:
        _fail(str(exc))
    if not as_json:
        err.print(f"[dim]… supervisor {pid} started, broker {state.broker}; waiting for"
                  f" parties[/]")

    async def wait_online(c: Coordinator):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await c.status(wait=0.2)
            if len(c.online()) == c.roster.n:
                return c.presence
            await asyncio.sleep(0.1)
        return None

    presence = _coordinate(cluster_dir, None, state.broker, wait_online)
    if presence is None:
        stop_cluster(cluster_dir)
        _fail(f"not all parties came online within {timeout:g}s; see {cluster_dir}/party*/node.log")
    if as_json:
        print(json.dumps({"supervisor_pid": pid, "broker": state.broker,
                          "parties": sorted(presence)}, indent=2))
    else:
        console.print(f"cluster up: {len(presence)} parties online via {state.broker}")


@cluster.command("down")
@common_dir
def cluster_down(cluster_dir):
    """Stop every process of a cluster started with `cluster up`, even without its
    supervisor."""
    stopped = stop_cluster(cluster_dir)
    if stopped:
        console.print(f"cluster stopped: {', '.join(stopped)}")
    else:
        console.print("no running cluster here")


@cluster.command("procs")
@common_dir
@common_json
def cluster_procs_cmd(cluster_dir, as_json):
    """The processes of a cluster started here that still run, and orphans (nodes whose
    supervisor is gone: `cluster down` stops them)."""
    from mpc_nodes.deploy.cluster_procs import live
    running = live(cluster_dir)
    orphaned = [] if any(p.name == "supervisor" for p in running) else running
    if as_json:
        print(json.dumps({"running": [p.__dict__ for p in running],
                          "orphans": [p.name for p in orphaned]}, indent=2))
        return
    for p in running:
        console.print(f"{p}{' [bold red]orphan[/]' if p in orphaned else ''}")
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


@main.command()
@common_dir
@common_broker
@common_coord
@common_json
def status(cluster_dir, broker, coordinator, as_json):
    """Show every party: online/offline/deaf, version, protocol code digest."""
    async def action(c: Coordinator):
        return await c.status(wait=1.5)
    presence = _coordinate(cluster_dir, coordinator, broker, action)
    ours = code_digest()
    rows = [{"party": name, "state": p.state if p else "unknown",
             "version": p.version if p else None, "code_digest": p.code_digest if p else None,
             "since": p.ts if p else None} for name, p in presence.items()]
    if as_json:
        print(json.dumps({"coordinator_code_digest": ours, "parties": rows}, indent=2))
        return
    table = Table(title="mpcnet parties")
    for col in ("party", "state", "version", "code digest"):
        table.add_column(col)
    for r in rows:
        colour = {"online": "green", "offline": "red", "deaf": "red"}.get(r["state"], "yellow")
        digest = r["code_digest"] or "-"
        mark = "" if digest in ("-", ours) else " [red](differs from ours)[/]"
        table.add_row(r["party"], f"[{colour}]{r['state']}[/]", r["version"] or "-",
                      digest[:16] + mark)
    console.print(table)


@main.command()
@common_dir
@click.option("--input", "input_name", required=True, help="name of each party's private input")
@click.option("--method", type=click.Choice(["median", "mean"]), default="median",
              show_default=True)
@common_broker
@common_coord
@common_json
def aggregate(cluster_dir, input_name, method, broker, coordinator, as_json):
    """Median (or mean) of every party's private number NAME, revealing only that."""
    async def action(c: Coordinator):
        return await c.run_job("aggregate", {"input": input_name, "method": method},
                               progress=_progress(as_json))
    outcome = _coordinate(cluster_dir, coordinator, broker, action)
    _report(outcome, as_json, lambda o: console.print(
        f"{method} of {input_name} over {len(o.participants)} parties:"
        f" [bold]{o.output['value']:.6f}[/]"))


@main.command()
@common_dir
@click.option("--rounds", type=int, default=20, show_default=True, help="sequential MPC rounds")
@common_broker
@common_coord
@common_json
def ping(cluster_dir, rounds, broker, coordinator, as_json):
    """Open an MPC session among all online parties and measure the round latency."""
    async def action(c: Coordinator):
        return await c.run_job("ping", {"rounds": rounds}, progress=_progress(as_json))
    outcome = _coordinate(cluster_dir, coordinator, broker, action)

    def render(o: JobOutcome):
        table = Table(title=f"ping: {rounds} rounds")
        for col in ("party", "set-up ms", "MPC ms", "ms / round"):
            table.add_column(col, justify="right")
        for name, t in o.party_timings.items():
            table.add_row(name, f"{1000 * t['connect_s']:.1f}", f"{1000 * t['mpc_s']:.1f}",
                          f"{1000 * t['mpc_s'] / rounds:.2f}")
        console.print(table)
    _report(outcome, as_json, render)


@main.group()
def audit():
    """Check the nodes' hash-chained audit logs."""


@audit.command("verify")
@common_dir
@common_json
def audit_verify(cluster_dir, as_json):
    """Verify every party's audit chain and that all participants recorded the same results."""
    from mpc_nodes.node.audit import verify_cluster
    from mpc_nodes.deploy.cluster import party_dirs
    from mpc_nodes.config import load_node_config, resolve
    try:
        logs = {}
        for pdir in party_dirs(cluster_dir):
            cfg = load_node_config(pdir / "node.yaml")
            logs[cfg.party] = resolve(pdir / "node.yaml", cfg.data_dir) / "audit.log"
    except USER_ERRORS as exc:
        _fail(str(exc))
    reports, disagreements = verify_cluster(logs)
    ok = all(r.ok for r in reports.values()) and not disagreements
    if as_json:
        print(json.dumps({"ok": ok, "disagreements": disagreements, "logs": {
            name: {"ok": r.ok, "entries": r.entries, "head": r.head, "bad_line": r.bad_line,
                   "reason": r.reason, "warnings": r.warnings, "path": str(r.path)}
            for name, r in reports.items()}}, indent=2))
    else:
        for name, r in reports.items():
            if r.ok:
                console.print(f"{name}: [green]ok[/], {r.entries} entries, head {r.head[:16]}")
            else:
                console.print(f"{name}: [red]TAMPERED[/] at {r.path} line {r.bad_line}: {r.reason}")
            for warning in r.warnings:  # torn final lines: an interrupted append, kept aside
                console.print(f"{name}: [yellow]warning[/] {r.path} {warning}")
        for d in disagreements:
            console.print(f"[red]results disagree[/] {d}")
    sys.exit(0 if ok else 1)


@main.command("mosquitto-config")
@common_dir
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--port", type=int, default=8883, show_default=True)
@click.option("--bind", default="0.0.0.0", show_default=True)
@click.option("--coordinator-port", type=int, default=None,
              help="also listen here for coordinators, so that several processes of one"
              " coordinator can connect at once (on --port every client id is its certificate"
              " name)")
def mosquitto_config(cluster_dir, out, port, bind, coordinator_port):
    """Write mosquitto.conf, ACL and certificates for this cluster's broker: TLS, certificate
    logins (CN = party or coordinator name, which is also the client id), each node
    publishing only its own topics."""
    from mpc_nodes.wire.mosquitto import write_files
    try:
        conf = write_files(cluster_dir, out, port, bind, coordinator_port=coordinator_port)
    except (*USER_ERRORS, OSError) as exc:
        _fail(str(exc))
    console.print(f"wrote {conf}; run: mosquitto -c {conf}")


@main.command(hidden=True)
@common_dir
def broker(cluster_dir):
    """Run only the embedded broker of a cluster directory (for development and tests)."""
    from mpc_nodes.deploy.supervisor import run_broker
    run_broker(cluster_dir)


@main.command()
@click.option("--parties", "-n", type=int, default=3, show_default=True)
@click.option("--threshold", "-t", type=int, default=1, show_default=True)
@common_broker
@click.option("--keep", is_flag=True, help="keep the temporary cluster directory")
def demo(parties, threshold, broker, keep):
    """Create a temporary cluster, start it, run joint computations, stop it."""
    from mpc_nodes.cli.demo import run_demo
    workdir = Path(tempfile.mkdtemp(prefix="mpcnet-demo-"))
    try:
        ok = run_demo(workdir / "cluster", parties, threshold, broker, console, err)
    except USER_ERRORS as exc:
        ok = False
        err.print(f"[bold red]error:[/] {exc}")
    finally:
        stop_cluster(workdir / "cluster")
        if keep:
            console.print(f"cluster directory kept at {workdir / 'cluster'}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(0 if ok else 1)


def _add_commands() -> None:
    from mpc_nodes.cli import deploy, jobs, keys, price
    for command in (keys.keygen, keys.sign, keys.presign, keys.refresh, keys.keys, price.price,
                    price.verify_report, deploy.deploy, deploy.demo_jobs, jobs.job):
        main.add_command(command)


_add_commands()

if __name__ == "__main__":
    main()

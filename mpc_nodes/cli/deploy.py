"""Deployment commands: `deploy compose` writes a docker-compose project for a cluster
directory, `mosquitto-config` a production broker's configuration; `demo-jobs` runs the
demo's jobs against a cluster already running (in containers, or started with `cluster up`)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from rich.console import Console

from mpc_nodes.cli.common import (common_broker, common_dir, common_json, console, err, exits,
                                  print_json)


@click.group()
def deploy():
    """Deployment files for a cluster directory made by mpcnet init."""


@deploy.command("compose")
@common_dir
@click.option("--out", type=click.Path(path_type=Path), help="new directory (default: DIR/deploy)")
@click.option("--image", default="mpcnet:latest", show_default=True,
              help="image tag for the parties and the coordinator")
@common_json
def deploy_compose(cluster_dir, out, image, as_json):
    """Write docker-compose.yml and a copy of the cluster rewritten for containers: Mosquitto
    with TLS and the ACL, one service per party, and a coordinator (profile "tools")."""
    from mpc_nodes.deploy.compose import emit_compose
    out = out or Path(cluster_dir) / "deploy"
    with exits(also=(OSError,)):
        summary = emit_compose(cluster_dir, out, image)
    if as_json:
        print_json(summary)
        return
    console.print(f"wrote {summary['compose']}: broker {summary['broker']}, parties"
                  f" {', '.join(summary['parties'])}", markup=False)
    if summary["broker_cert_reissued"]:
        console.print("issued a broker certificate naming 'mosquitto' from the cluster CA")
    console.print(f"next: cd {out} && docker compose up -d --build &&"
                  " docker compose run --rm coordinator mpcnet demo-jobs", markup=False)


@click.command("mosquitto-config")
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
    with exits(also=(OSError,)):
        conf = write_files(cluster_dir, out, port, bind, coordinator_port=coordinator_port)
    console.print(f"wrote {conf}; run: mosquitto -c {conf}", markup=False)


@click.command("demo-jobs")
@common_dir
@common_broker
@common_json
def demo_jobs(cluster_dir, broker, as_json):
    """Run the demo's jobs (private median and mean, and a job no party can serve) against a
    running cluster. Reads DIR/coordinator; where DIR/party*/inputs.yaml are readable (a
    cluster on this machine, not a coordinator's own view) each result is also checked
    against the plaintext. --json lists every job's result."""
    from mpc_nodes.cli.demo import _jobs
    from mpc_nodes.client.api import coordinator_config, running_broker
    cluster_dir = Path(cluster_dir)
    out, problems = (Console(quiet=True), Console(quiet=True)) if as_json else (console, err)
    plaintext = any(cluster_dir.glob("party*/inputs.yaml"))
    results: list[dict] = []
    with exits(also=(OSError,)):
        coordinator_config(cluster_dir)
        ok = asyncio.run(_jobs(cluster_dir, broker or running_broker(cluster_dir), out,
                               problems, plaintext, results))
    if as_json:
        print_json({"ok": ok, "plaintext_checked": plaintext, "jobs": results})
    sys.exit(0 if ok else 1)

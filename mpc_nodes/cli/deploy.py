"""Deployment commands of the `mpcnet` CLI: `deploy compose` writes a docker-compose project
for a cluster directory; `demo-jobs` runs the demo's jobs against a cluster already running
(in containers, or started with `cluster up`)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click
from rich.console import Console

from mpc_nodes.cli.common import (USER_ERRORS, _broker, _coordinator_config, _fail, common_broker, common_dir,
                  common_json, console, err)


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
    try:
        summary = emit_compose(cluster_dir, out, image)
    except (*USER_ERRORS, OSError) as exc:
        _fail(str(exc))
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    console.print(f"wrote {summary['compose']}: broker {summary['broker']}, parties"
                  f" {', '.join(summary['parties'])}")
    if summary["broker_cert_reissued"]:
        console.print("issued a broker certificate naming 'mosquitto' from the cluster CA")
    console.print(f"next: cd {out} && docker compose up -d --build &&"
                  " docker compose run --rm coordinator mpcnet demo-jobs")


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
    cluster_dir = Path(cluster_dir)
    _coordinator_config(cluster_dir, None)
    out, problems = (Console(quiet=True), Console(quiet=True)) if as_json else (console, err)
    plaintext = any(cluster_dir.glob("party*/inputs.yaml"))
    results: list[dict] = []
    try:
        ok = asyncio.run(_jobs(cluster_dir, _broker(cluster_dir, broker), out, problems,
                               plaintext, results))
    except (*USER_ERRORS, OSError) as exc:
        _fail(str(exc))
    except KeyError as exc:
        _fail(f"a party*/inputs.yaml in {cluster_dir} has no input {exc}")
    if as_json:
        print(json.dumps({"ok": ok, "plaintext_checked": plaintext, "jobs": results}))
    sys.exit(0 if ok else 1)

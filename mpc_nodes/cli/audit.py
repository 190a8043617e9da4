"""`mpcnet audit verify`: every party's hash-chained audit log, checked on this machine."""

from __future__ import annotations

import sys

import click

from mpc_nodes.cli.common import common_dir, common_json, console, exits, print_json, styled


@click.group()
def audit():
    """Check the nodes' hash-chained audit logs."""


@audit.command("verify")
@common_dir
@common_json
def audit_verify(cluster_dir, as_json):
    """Verify every party's audit chain and that all participants recorded the same results."""
    from mpc_nodes.config import load_node_config, resolve
    from mpc_nodes.deploy.cluster import party_dirs
    from mpc_nodes.node.audit import verify_cluster
    logs = {}
    with exits():
        for pdir in party_dirs(cluster_dir):
            cfg = load_node_config(pdir / "node.yaml")
            logs[cfg.party] = resolve(pdir / "node.yaml", cfg.data_dir) / "audit.log"
    reports, disagreements = verify_cluster(logs)
    ok = all(r.ok for r in reports.values()) and not disagreements
    if as_json:
        print_json({"ok": ok, "disagreements": disagreements, "logs": {
            name: {"ok": r.ok, "entries": r.entries, "head": r.head, "bad_line": r.bad_line,
                   "reason": r.reason, "warnings": r.warnings, "path": str(r.path)}
            for name, r in reports.items()}})
    else:
        for name, r in reports.items():
            if r.ok:
                console.print(styled(f"{name}: ", ("ok", "green"),
                                     f", {r.entries} entries, head {r.head[:16]}"))
            else:
                console.print(styled(f"{name}: ", ("TAMPERED", "red"),
                                     f" at {r.path} line {r.bad_line}: {r.reason}"))
            for warning in r.warnings:  # torn final lines: an interrupted append, kept aside
                console.print(styled(f"{name}: ", ("warning", "yellow"), f" {r.path} {warning}"))
        for d in disagreements:
            console.print(styled(("results disagree", "red"), f" {d}"))
    sys.exit(0 if ok else 1)

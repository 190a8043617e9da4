"""The roster a node holds: the last one it accepted, kept in its data directory.

At start the node is offered the roster its config names; mpc_nodes.governance decides from
the held one (none yet: a first roster, signed by every operator) whether it may be used.
An accepted change is written atomically and recorded in the audit log, so a node can never
be moved back to an older version (a replay) by editing the file its config names.
"""

from __future__ import annotations

from pathlib import Path

from keyshare.atomic import write_atomic

from mpc_nodes import governance
from mpc_nodes.config import ConfigError, Roster, load_roster
from mpc_nodes.node.audit import AuditLog

HELD = "roster.accepted.yaml"


def adopt(data_dir: Path, offered: Roster, audit: AuditLog) -> Roster:
    """`offered` if this node may run with it (and now holds it); ConfigError otherwise."""
    path = Path(data_dir) / HELD
    held = load_roster(path) if path.exists() else None
    try:
        governance.accept(held, offered)
    except governance.RosterTrustError as exc:
        raise ConfigError(f"refusing the roster: {exc}") from None
    digest = governance.roster_digest(offered).hex()
    if held is None or governance.roster_digest(held).hex() != digest:
        audit.append("roster", cluster=offered.cluster_id, version=offered.version,
                     digest=digest, previous=held.version if held else None,
                     signers=sorted(s.signer for s in offered.signatures))
        write_atomic(path, offered.model_dump_json().encode(), mode=0o600)
    return offered

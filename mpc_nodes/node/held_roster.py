"""The roster a node or a coordinator holds: the last one it accepted, kept in its data
directory (a coordinator: beside its coordinator.yaml).

At start each is offered the roster its config names; mpc_nodes.governance decides from the
held one (none yet: a first roster, signed by every operator) whether it may be used.  An
accepted change is written atomically and recorded (a node: in its audit log; a coordinator,
which keeps none: in its log), so neither can be moved back to an older version (a replay)
by editing the file its config names.
"""

from __future__ import annotations

import logging
from pathlib import Path

from keyshare.atomic import write_atomic

from mpc_nodes import governance
from mpc_nodes.config import ConfigError, Roster, load_roster
from mpc_nodes.node.audit import AuditLog

HELD = "roster.accepted.yaml"
log = logging.getLogger("mpcnet.roster")


def adopt(data_dir: Path, offered: Roster, audit: AuditLog | None) -> Roster:
    """`offered` if this node (audit: its log) or coordinator (audit None) may run with it,
    and now holds it; ConfigError naming who did not sign otherwise."""
    path = Path(data_dir) / HELD
    held = load_roster(path) if path.exists() else None
    try:
        governance.accept(held, offered)
    except governance.RosterTrustError as exc:
        raise ConfigError(f"refusing the roster: {exc}") from None
    digest = governance.roster_digest(offered).hex()
    if held is None or governance.roster_digest(held).hex() != digest:
        change = dict(cluster=offered.cluster_id, version=offered.version, digest=digest,
                      previous=held.version if held else None,
                      signers=sorted({s.signer for s in offered.signatures}))
        if audit is None:
            log.info("accepted roster %s", change)
        else:
            audit.append("roster", **change)
        write_atomic(path, offered.model_dump_json().encode(), mode=0o600)
    return offered

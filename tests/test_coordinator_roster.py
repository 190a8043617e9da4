"""A coordinator trusts a roster only as a node does (mpc_nodes.node.held_roster): a first
roster signed by every operator it lists, then each next version signed by the quorum, held
beside its coordinator.yaml so that an older version cannot be replayed to it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mpc_nodes import governance
from mpc_nodes.cli.app import main
from mpc_nodes.client.coordinator import Coordinator
from mpc_nodes.config import ConfigError, dump_yaml, load_roster
from mpc_nodes.deploy.cluster import _local_identities, amend_roster, init_cluster
from mpc_nodes.node.held_roster import HELD


def test_a_coordinator_refuses_a_roster_without_every_signature(tmp_path):
    cluster = tmp_path / "c"
    roster = init_cluster(cluster, parties=3, threshold=1)  # signed by every operator
    config = cluster / "coordinator" / "coordinator.yaml"
    dump_yaml(cluster / "roster.yaml", roster.model_copy(update={"signatures": [
        s for s in roster.signatures if s.signer not in ("party2", "coordinator")]}))
    with pytest.raises(ConfigError, match="lacks a valid signature of coordinator, party2"):
        Coordinator(config)
    assert not (cluster / "coordinator" / HELD).exists()
    result = CliRunner().invoke(main, ["status", "--dir", str(cluster)])
    assert result.exit_code == 2 and "coordinator, party2" in result.output

    dump_yaml(cluster / "roster.yaml", roster)
    assert Coordinator(config).roster == roster  # held from now on
    assert load_roster(cluster / "coordinator" / HELD) == roster


def test_a_coordinator_takes_quorum_signed_updates_and_refuses_a_replay(tmp_path):
    cluster = tmp_path / "c"
    v1 = init_cluster(cluster, parties=3, threshold=1)
    config = cluster / "coordinator" / "coordinator.yaml"
    Coordinator(config)
    v2 = amend_roster(cluster, limits=v1.limits.model_copy(update={"vol_spread_limit": 0.3}))
    assert Coordinator(config).roster == v2
    party0 = dict(_local_identities(cluster))["party0"]  # one party alone signs version 3
    forged = governance.sign(v2.model_copy(update={"version": 3, "signatures": []}), "party0",
                             party0)
    for offered, reason in ((v1, "does not follow the version"),
                            (forged, "signed by 1 of the current roster's parties")):
        dump_yaml(cluster / "roster.yaml", offered)
        with pytest.raises(ConfigError, match=reason):
            Coordinator(config)
    assert load_roster(cluster / "coordinator" / HELD) == v2

"""Cluster creation, config validation and the CLI's handling of bad input."""

import os
from pathlib import Path
import stat
import subprocess
import sys

import pytest

from mpc_nodes.deploy.cluster import ClusterError, free_port, init_cluster
from mpc_nodes.config import ConfigError, load_node_config, load_roster, parse_broker_url
from mpc_nodes.pki import KeyFileError, load_identity, public_hex, read_passphrase
from mpc_nodes.node.replay import ReplayGuard


def mpcnet(*args, **kw):
    return subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *args], capture_output=True,
                          text=True, timeout=60, **kw)


@pytest.mark.timeout(60)
def test_init_creates_a_consistent_cluster(tmp_path):
    roster = init_cluster(tmp_path / "c", parties=5, threshold=2)
    assert load_roster(tmp_path / "c" / "roster.yaml") == roster
    for p in roster.parties:
        pdir = tmp_path / "c" / p.name
        cfg = load_node_config(pdir / "node.yaml")
        passphrase = read_passphrase(cfg.passphrase, pdir / "node.yaml")
        assert public_hex(load_identity(pdir / "identity.key", passphrase)) == p.identity_key
        for secret in ("identity.key", "tls.key", "passphrase", "inputs.yaml"):
            assert stat.S_IMODE((pdir / secret).stat().st_mode) == 0o600, secret
        assert stat.S_IMODE(pdir.stat().st_mode) == 0o700
        assert b"ENCRYPTED" in (pdir / "identity.key").read_bytes()
        with pytest.raises(KeyFileError, match="wrong passphrase"):
            load_identity(pdir / "identity.key", b"not the passphrase")


@pytest.mark.parametrize("n, t, message", [(2, 1, "at least 3"), (3, 2, "need 1 <= t < n/2"),
                                           (4, 2, "t <= 1"), (3, -1, "not allowed"),
                                           (3, 0, "t must be at least 1")])
def test_init_refuses_bad_shapes(tmp_path, n, t, message):
    with pytest.raises(ClusterError, match=message):
        init_cluster(tmp_path / "c", n, t)


def test_free_port_keeps_to_its_test_workers_share(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "3")
    # on 127.0.0.2: the check binds nothing the running workers' 127.0.0.1 ports could meet
    assert {free_port("127.0.0.2") % 3 for _ in range(20)} == {2}


@pytest.mark.timeout(60)
def test_cli_init_errors_and_json(tmp_path):
    bad = mpcnet("init", "--parties", "3", "--threshold", "2", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "threshold 2 is not allowed with 3 parties" in bad.stderr
    ok = mpcnet("init", "-n", "3", "-t", "1", "--out", str(tmp_path / "c"), "--json")
    assert ok.returncode == 0, ok.stderr
    again = mpcnet("init", "-n", "3", "-t", "1", "--out", str(tmp_path / "c"))
    assert again.returncode == 2 and "not empty" in again.stderr


def test_world_readable_key_and_passphrase_files_are_refused(tmp_path):
    init_cluster(tmp_path / "c", 3, 1)
    pdir = tmp_path / "c" / "party0"
    os.chmod(pdir / "passphrase", 0o644)
    cfg = load_node_config(pdir / "node.yaml")
    with pytest.raises(KeyFileError, match="readable by others"):
        read_passphrase(cfg.passphrase, pdir / "node.yaml")
    os.chmod(pdir / "identity.key", 0o640)
    with pytest.raises(KeyFileError, match="accessible by others"):
        load_identity(pdir / "identity.key", b"x")


def test_config_errors_name_file_and_field(tmp_path):
    init_cluster(tmp_path / "c", 3, 1)
    cfg = tmp_path / "c" / "party0" / "node.yaml"
    cfg.write_text(cfg.read_text().replace("party: party0", "party: Party 0"))
    with pytest.raises(ConfigError, match=r"node.yaml: party: String should match"):
        load_node_config(cfg)
    with pytest.raises(ConfigError, match="file not found"):
        load_node_config(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="mqtt://host:port"):
        parse_broker_url("http://localhost:1883")
    assert parse_broker_url("mqtts://[::1]:8883") == (True, "::1", 8883)


def test_replay_guard_survives_reopen(tmp_path):
    guard = ReplayGuard(tmp_path / "seen.sqlite")
    assert guard.first_time("a" * 32, 2e9)
    assert not guard.first_time("a" * 32, 2e9)
    guard.close()
    guard = ReplayGuard(tmp_path / "seen.sqlite")
    assert not guard.first_time("a" * 32, 2e9)
    assert guard.first_time("b" * 32, 2e9)


def test_example_configs_validate():
    from mpc_nodes.config import CoordinatorConfig, NodeConfig, load_yaml_model
    configs = Path(__file__).resolve().parent.parent / "configs"
    roster = load_roster(configs / "roster.example.yaml")
    assert roster.n == 3 and roster.threshold == 1
    node = load_yaml_model(configs / "node.example.yaml", NodeConfig)
    assert roster.party(node.party) is not None and node.passphrase.env
    coord = load_yaml_model(configs / "coordinator.example.yaml", CoordinatorConfig)
    assert roster.coordinator(coord.name) is not None


def test_input_errors_never_quote_the_private_value(tmp_path):
    from mpc_nodes.node.inputs import InputError, load_input
    path = tmp_path / "inputs.yaml"
    path.write_text("eth_vol_30d: '0.6543'\n")
    with pytest.raises(InputError) as refused:
        load_input(path, "eth_vol_30d")
    assert "0.6543" not in str(refused.value) and str(tmp_path) not in str(refused.value)
    assert "is not a finite number (it is a str)" in str(refused.value)


@pytest.mark.timeout(60)
def test_node_refuses_to_start_on_a_config_the_roster_does_not_match(tmp_path):
    """A node whose config names a party outside the roster, or whose audit log is damaged,
    exits 2 with the reason: an operator's mistake, not a crash with a traceback."""
    init_cluster(tmp_path / "c", parties=3, threshold=1)
    config = tmp_path / "c" / "party0" / "node.yaml"
    original = config.read_text()
    config.write_text(original.replace("party: party0", "party: nobody"))
    run = mpcnet("node", "--config", str(config))
    assert run.returncode == 2, run.stderr
    assert "party 'nobody' is not in the roster" in run.stderr
    assert "Traceback" not in run.stderr

    config.write_text(original)
    audit = tmp_path / "c" / "party0" / "data" / "audit.log"
    audit.parent.mkdir(parents=True, exist_ok=True)
    audit.write_text('{"not": "a chained entry"}\n')
    run = mpcnet("node", "--config", str(config))
    assert run.returncode == 2, run.stderr
    assert "audit log" in run.stderr and "is damaged at line 1" in run.stderr
    assert "Traceback" not in run.stderr

"""The CLI as an operator uses it: init, cluster up, status, aggregate, ping, cluster down, demo."""

import json
import os
import statistics
import subprocess
import sys

import pytest
import yaml

from mpc_nodes.deploy.cluster import RunState
from tests.cluster_harness import MOSQUITTO_URL, mosquitto_available

pytestmark = pytest.mark.e2e
OUTCOME_FIELDS = {"job_id", "kind", "params", "ok", "output", "error", "participants", "votes",
                  "party_errors", "timings"}


def mpcnet(*args, timeout=90):
    return subprocess.run([sys.executable, "-m", "mpc_nodes.cli.app", *args], capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture
def cluster_dir(tmp_path):
    d = tmp_path / "cluster"
    assert mpcnet("init", "-n", "3", "-t", "1", "--out", str(d)).returncode == 0
    yield d
    mpcnet("cluster", "down", "--dir", str(d))


@pytest.mark.timeout(150)
@pytest.mark.parametrize("external", [False, pytest.param(True, marks=pytest.mark.skipif(
    not mosquitto_available(), reason="no Mosquitto on 127.0.0.1:1883"))],
    ids=["embedded", "mosquitto"])
def test_cluster_lifecycle_through_the_cli(cluster_dir, external):
    broker = ["--broker", MOSQUITTO_URL] if external else []
    up = mpcnet("cluster", "up", "--dir", str(cluster_dir), *broker, "--json")
    assert up.returncode == 0, up.stderr
    state = json.loads(up.stdout)
    assert state["parties"] == ["party0", "party1", "party2"]
    again = mpcnet("cluster", "up", "--dir", str(cluster_dir))
    assert again.returncode == 2 and "already up" in again.stderr

    status = json.loads(mpcnet("status", "--dir", str(cluster_dir), "--json").stdout)
    assert [p["state"] for p in status["parties"]] == ["online"] * 3
    assert {p["code_digest"] for p in status["parties"]} == {status["coordinator_code_digest"]}

    values = [yaml.safe_load((cluster_dir / f"party{i}" / "inputs.yaml").read_text())["btc_vol_30d"]
              for i in range(3)]
    agg = mpcnet("aggregate", "--dir", str(cluster_dir), "--input", "btc_vol_30d", "--json")
    assert agg.returncode == 0, agg.stderr
    result = json.loads(agg.stdout)
    assert result["ok"] and result["output"]["value"] == pytest.approx(statistics.median(values),
                                                                       abs=1e-7)
    assert OUTCOME_FIELDS <= set(result)  # the one --json shape of a job (docs/API.md)
    eth = [yaml.safe_load((cluster_dir / f"party{i}" / "inputs.yaml").read_text())["eth_vol_30d"]
           for i in range(3)]  # a mean of btc_vol_30d too would be refused (one aggregation)
    human = mpcnet("aggregate", "--dir", str(cluster_dir), "--input", "eth_vol_30d",
                   "--method", "mean")
    assert human.returncode == 0 and f"{statistics.mean(eth):.6f}" in human.stdout

    refused = mpcnet("aggregate", "--dir", str(cluster_dir), "--input", "nope")
    assert refused.returncode == 1
    assert "party0 rejected: no private input 'nope'" in refused.stderr
    failed = json.loads(mpcnet("aggregate", "--dir", str(cluster_dir), "--input", "nope",
                               "--json").stdout)
    assert OUTCOME_FIELDS <= set(failed) and not failed["ok"]
    bad_key = mpcnet("presign", "--dir", str(cluster_dir), "--key", "Vault 1")
    assert bad_key.returncode == 2  # printed literally, brackets and all
    assert "key id 'Vault 1' is not valid: it must match ^[a-z0-9][a-z0-9-]{2,63}$" \
        in bad_key.stderr, bad_key.stderr

    ping = mpcnet("ping", "--dir", str(cluster_dir), "--rounds", "5", "--json")
    assert ping.returncode == 0 and json.loads(ping.stdout)["ok"]

    supervisor = RunState.load(cluster_dir).supervisor_pid
    down = mpcnet("cluster", "down", "--dir", str(cluster_dir))
    assert down.returncode == 0 and "cluster stopped" in down.stdout
    with pytest.raises(ProcessLookupError):
        os.kill(supervisor, 0)
    assert RunState.load(cluster_dir) is None

    audit = mpcnet("audit", "verify", "--dir", str(cluster_dir), "--json")
    assert audit.returncode == 0, audit.stdout
    report = json.loads(audit.stdout)
    assert report["ok"] and all(log["entries"] >= 8 for log in report["logs"].values())
    log1 = cluster_dir / "party1" / "data" / "audit.log"
    lines = log1.read_text().splitlines(keepends=True)
    n = next(i for i, line in enumerate(lines) if '"accept":true' in line)
    lines[n] = lines[n].replace('"accept":true', '"accept":false')  # rewrite history
    log1.write_text("".join(lines))
    tampered = mpcnet("audit", "verify", "--dir", str(cluster_dir))
    assert tampered.returncode == 1
    assert "party1: TAMPERED" in tampered.stdout and f"line {n + 1}:" in tampered.stdout


@pytest.mark.timeout(150)
def test_demo_runs_end_to_end():
    demo = mpcnet("demo", timeout=140)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "demo passed" in demo.stdout
    assert demo.stdout.count("plaintext check") == 3 and "MISMATCH" not in demo.stdout
    # a mean of the inputs whose median the demo revealed is refused (SECURITY.md, attack 1)
    assert "is refused by every party: private input 'eth_vol_30d' is bound to aggregation" \
        " 'median'" in demo.stdout.replace("\n", " ")
    assert "Ed25519 signature verified by OpenSSL" in demo.stdout  # the signed price report
    assert "verified by eth-account and libsecp256k1" in demo.stdout
    assert "is already used by another transaction" in demo.stdout.replace("\n", " ")


def test_coordinator_commands_explain_a_missing_cluster(tmp_path):
    out = mpcnet("status", "--dir", str(tmp_path))
    assert out.returncode == 2 and "no coordinator config" in out.stderr

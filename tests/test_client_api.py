"""The public client (mpc_nodes.client): the example of docs/API.md, run as it is written
against a local cluster, and its errors — a refused job carries each party's reason, bad
input is a UsageError naming the problem before anything is sent."""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import sys
import pytest
import yaml

from mpc_nodes.client import Client, JobFailed, UsageError
from tests.cluster_harness import ROOT, LocalCluster, _env, eth_policy, write_policies

RECIPIENT = "0x1111111111111111111111111111111111111111"


def api_example() -> str:
    """The one python block of docs/API.md."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "API.md").read_text(), re.S)
    assert len(blocks) == 1, "docs/API.md should hold exactly one python example"
    return blocks[0]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One cluster for the module: its tests do not break it."""
    made = write_policies(LocalCluster(tmp_path_factory.mktemp("api"), 3, 1),
                          eth_policy(RECIPIENT))
    yield made.start()
    made.close()


def inputs(cluster, name: str) -> list[float]:
    return [yaml.safe_load((cluster.dir / f"party{i}" / "inputs.yaml").read_text())[name]
            for i in range(cluster.roster.n)]


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_the_documented_example_runs(cluster, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(api_example())
    run = subprocess.run([sys.executable, str(script), str(cluster.dir)], capture_output=True,
                         text=True, timeout=170, env=_env(), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "online: party0, party1, party2" in out
    expected = statistics.median(inputs(cluster, "eth_vol_30d"))  # checked by plain Python
    assert f"median ETH vol {expected:.6f} over 3 parties" in out, out
    assert re.search(r"key vault-1: 2-of-3, address 0x[0-9a-fA-F]{40}", out), out
    assert re.search(r"signed 0x[0-9a-f]{64}: v=[01] r=0x[0-9a-f]+ s=0x[0-9a-f]+", out), out
    refusals = re.findall(r"party\d refused: policy: nonce 0 .* already used", out)
    assert len(refusals) == 3, out
    prices = re.findall(r"(call|put) (\d+): ok price ([\d.]+) delta (-?[\d.]+)", out)
    assert [(kind, strike) for kind, strike, *_ in prices] == [("call", "3000"), ("put", "2700")]
    assert all(float(price) > 0 for *_, price, _ in prices)
    call_delta, put_delta = (float(delta) for *_, delta in prices)
    assert 0 < call_delta < 1 and -1 < put_delta < 0


@pytest.mark.e2e
@pytest.mark.timeout(60)
async def test_a_refused_job_carries_each_partys_reason(cluster):
    async with Client.connect(cluster.dir, cluster.broker_url) as net:
        await net.wait_for_parties(30)
        with pytest.raises(JobFailed) as failed:
            await net.aggregate("no-such-input")
    outcome = failed.value.outcome
    assert not outcome.ok and outcome.participants == []
    assert set(failed.value.reasons) == {"party0", "party1", "party2"}
    assert all("no private input 'no-such-input'" in reason
               for reason in failed.value.reasons.values()), failed.value.reasons
    assert [v.party for v in outcome.votes if not v.accept] == ["party0", "party1", "party2"]


@pytest.mark.e2e
@pytest.mark.timeout(60)
async def test_bad_parameters_are_usage_errors_naming_the_field(cluster):
    async with Client.connect(cluster.dir, cluster.broker_url) as net:
        with pytest.raises(UsageError, match=r"aggregate: parameter method"):
            await net.aggregate("eth_vol_30d", method="mode")
        with pytest.raises(UsageError, match=r"invalid transaction: .*chainId"):
            await net.sign("vault-x", {"to": RECIPIENT})
        with pytest.raises(UsageError, match=r"presigned applies to ECDSA"):
            await net.sign("vault-x", b"a message", presigned=True)


def test_a_bad_key_id_is_a_usage_error_naming_the_pattern(tmp_path):
    net = Client(tmp_path / "coordinator.yaml")  # never connected: the id is checked first
    with pytest.raises(UsageError) as bad:
        asyncio.run(net.presign("Vault 1"))
    assert str(bad.value) == ("key id 'Vault 1' is not valid: it must match"
                              " ^[a-z0-9][a-z0-9-]{2,63}$ (3 to 64 lowercase letters, digits"
                              " and hyphens)")


def test_a_missing_cluster_is_a_user_error(tmp_path):
    from mpc_nodes.errors import UserError
    with pytest.raises(UserError, match="no coordinator config at"):
        Client.connect(tmp_path)

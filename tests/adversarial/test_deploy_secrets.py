"""Item 8: secrets stay apart in deployments.

The attacker holds what one deployment artefact gives: the files the coordinator's container
mounts (a curious coordinator operator), a copy of one party's data/keys volume (a stolen
snapshot or backup), or read access to the Kubernetes Secret whose files the party pod
mounts. From that alone they try to learn the parties' private inputs or to decrypt a key.
"""

from pathlib import Path

import pytest
import yaml

from mpc_nodes import pki
from mpc_nodes.deploy.cluster import init_cluster
from mpc_nodes.deploy.compose import emit_compose

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def deploy(tmp_path):
    init_cluster(tmp_path / "cluster", 3, 1, broker="mqtts://mosquitto:8883",
                 inputs={"eth_vol_30d": [0.4711, 0.5822, 0.6933]})
    emit_compose(tmp_path / "cluster", tmp_path / "deploy")
    return tmp_path / "deploy"


def _mounted_files(deploy: Path, service: str) -> list[Path]:
    """Every host file that `service`'s container can read, from its bind mounts."""
    compose = yaml.safe_load((deploy / "docker-compose.yml").read_text())
    files = []
    for volume in compose["services"][service]["volumes"]:
        source = deploy / volume.split(":")[0]
        files += [source] if source.is_file() else [p for p in source.rglob("*") if p.is_file()]
    return files


def _try_to_decrypt(key_file: Path, candidates: set[bytes]) -> bytes | None:
    for guess in candidates:
        try:
            pki.load_private_key(key_file, guess)
            return guess
        except Exception:  # noqa: BLE001 - a wrong guess, whatever the error
            continue
    return None


def _strings(files: list[Path]) -> set[bytes]:
    """Every line and whitespace-separated word of every file: the attacker's guesses."""
    words = set()
    for f in files:
        data = f.read_bytes()
        words |= {w for line in data.splitlines() for w in [line.strip(), *line.split()] if w}
    return words


def test_coordinator_container_sees_no_party_input(deploy):
    """The coordinator operator reads everything its container mounts, looking for inputs."""
    seen = b"".join(f.read_bytes() for f in _mounted_files(deploy, "coordinator"))
    found = [v for v in (b"0.4711", b"0.5822", b"0.6933") if v in seen]
    assert not found, f"party inputs readable in the coordinator container: {found}"
    assert b"eth_vol_30d" not in seen


@pytest.mark.parametrize("party", ["party0", "coordinator"])
def test_a_stolen_key_volume_does_not_open_its_keys(deploy, party):
    """A snapshot of one party's /data volume (its directory): every string in it is tried
    as the passphrase of its identity and TLS keys."""
    volume = [f for f in (deploy / party).rglob("*") if f.is_file()]
    guesses = _strings(volume)
    for key in ("identity.key", "tls.key"):
        opened = _try_to_decrypt(deploy / party / key, guesses)
        assert opened is None, f"{party}/{key} opens with a passphrase from its own volume"


def test_k8s_keys_secret_does_not_hold_the_passphrase():
    """Read access to the Secret the pod mounts as files (the encrypted keys) must not give
    the passphrase: the env var comes from a Secret of its own."""
    docs = [d for f in sorted((ROOT / "deploy" / "k8s").glob("party*.yaml"))
            for d in yaml.safe_load_all(f.read_text())]
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"}
    pod = next(d for d in docs if d["kind"] == "StatefulSet")["spec"]["template"]["spec"]
    mounted = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    passphrase_from = {e["valueFrom"]["secretKeyRef"]["name"] for c in pod["containers"]
                       for e in c.get("env", []) if "valueFrom" in e}
    for name in mounted:
        assert "MPCNET_PASSPHRASE" not in secrets[name], f"Secret {name} holds the passphrase"
    holding_keys = {n for n, data in secrets.items() if "identity.key" in data}
    assert not (passphrase_from & holding_keys), "the passphrase sits in the keys' Secret"

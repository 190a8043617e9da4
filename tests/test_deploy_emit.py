"""Deployment files agree with the CLI, the image and each other: the compose project that
`mpcnet deploy compose` writes, the Kubernetes manifests in deploy/k8s, and `mpcnet demo-jobs`
against a running cluster. Checked structurally here (and the manifests against the
Kubernetes schemas); tests/test_containers.py runs the compose project for real."""

import asyncio
import hashlib
import subprocess
import sys
import posixpath
import re
import shutil
from pathlib import Path, PurePosixPath

import click
import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509

from mpc_nodes.wire import mosquitto
from mpc_nodes import pki
from mpc_nodes.cli.app import main
from mpc_nodes.deploy.cluster import ClusterError, init_cluster
from mpc_nodes.config import (NodeConfig, PassphraseSource, dump_yaml, load_coordinator_config, load_node_config,
                              load_roster, resolve)
from mpc_nodes.deploy.compose import emit_compose
from mpc_nodes.jobs.policy import Policy

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
METRICS_PORT = int(re.search(r"^EXPOSE (\d+)$", DOCKERFILE, re.M).group(1))


def cli_command(args: list[str]) -> click.Command:
    """The mpcnet command that `args` (without the program name) names, or fail."""
    group, ctx = main, click.Context(main)
    for word in args:
        if word.startswith("-"):
            break
        command = group.get_command(ctx, word)
        assert command is not None, f"{args} is not an mpcnet command"
        if not isinstance(command, click.Group):
            return command
        group = command
    raise AssertionError(f"{args} names no mpcnet command")


def snapshot(directory: Path) -> dict:
    return {p.relative_to(directory): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in directory.rglob("*") if p.is_file() and "deploy" not in p.parts}


# -- compose ----------------------------------------------------------------------------------

class Compose:
    """A generated compose file, with container paths mapped to files of the output dir."""

    def __init__(self, out: Path):
        self.out = out
        self.doc = yaml.safe_load((out / "docker-compose.yml").read_text())
        self.services = self.doc["services"]

    def mounts(self, service: str) -> list[tuple[str, str, str]]:
        result = []
        for volume in self.services[service].get("volumes", []):
            source, target, *mode = volume.split(":")
            result.append((source, target, mode[0] if mode else "rw"))
        return result

    def host_path(self, service: str, container_path: str) -> Path:
        """The file of the output dir that `container_path` is in `service`'s container."""
        path = PurePosixPath(posixpath.normpath(container_path))
        for source, target, _ in sorted(self.mounts(service), key=lambda m: -len(m[1])):
            if path == PurePosixPath(target) or PurePosixPath(target) in path.parents:
                assert source.startswith("./"), f"{service}: {source} is not a bind mount"
                return self.out / source / path.relative_to(target)
        raise AssertionError(f"{container_path} is on no volume of {service}")


@pytest.fixture
def cluster(tmp_path):
    init_cluster(tmp_path / "cluster", 3, 1, host="10.0.0.5")
    return tmp_path / "cluster"


def test_compose_project_is_complete_and_consistent(cluster, tmp_path):
    before = snapshot(cluster)
    out = tmp_path / "deploy"
    summary = emit_compose(cluster, out, image="mpcnet:test")
    assert snapshot(cluster) == before, "the source cluster directory was modified"
    compose = Compose(out)
    services, source = compose.services, load_roster(cluster / "roster.yaml")
    parties = [p.name for p in source.parties]
    assert set(services) == {"mosquitto", "coordinator", *parties}

    # everything referenced is defined; bind mounts exist in the output directory
    for name, svc in services.items():
        assert set(svc.get("networks", [])) <= set(compose.doc["networks"])
        assert set(svc.get("depends_on", [])) <= set(services) - {name}
        for source_path, target, mode in compose.mounts(name):
            assert source_path.startswith("./") and (out / source_path).exists(), source_path
            assert target.startswith("/") and mode in ("ro", "rw")
        assert "build" not in svc  # images come from deploy/build-images
    assert compose.doc["networks"]["mpcnet"]["internal"] is True
    # compose v1 refuses a top-level `name:`: the project name and image tags are in .env
    assert set(compose.doc) == {"services", "networks"}
    env = dict(line.split("=", 1) for line in (out / ".env").read_text().splitlines())
    assert env == {"COMPOSE_PROJECT_NAME": source.cluster_id, "MPCNET_IMAGE": "mpcnet:test",
                   "MPCNET_BROKER_IMAGE": "eclipse-mosquitto:2"}
    assert services["party0"]["image"] == "${MPCNET_IMAGE:-mpcnet:latest}"
    assert services["mosquitto"]["image"] == "${MPCNET_BROKER_IMAGE:-eclipse-mosquitto:2}"
    assert all("ports" not in svc for svc in services.values())  # nothing on the host

    # parties: the CLI command, a config inside the mounted volume, a coherent rewritten copy
    roster = load_roster(out / "roster.yaml")
    assert roster.cluster_id == source.cluster_id
    assert [p.host for p in roster.parties] == parties
    assert [p.identity_key for p in roster.parties] == [p.identity_key for p in source.parties]
    for p in roster.parties:
        svc = services[p.name]
        assert svc["hostname"] == p.name and str(p.mpc_port) in svc["expose"]
        assert str(METRICS_PORT) in svc["expose"]
        assert cli_command(svc["command"]).name == "node"
        config = svc["command"][svc["command"].index("--config") + 1]
        path = compose.host_path(p.name, config)
        assert path == out / p.name / "node.yaml"
        cfg = load_node_config(path)
        container_roster = posixpath.join(posixpath.dirname(config), cfg.roster)
        assert compose.host_path(p.name, container_roster) == out / "roster.yaml"
        assert cfg.party == p.name and cfg.broker == summary["broker"] == "mqtts://mosquitto:8883"
        assert (cfg.mpc_bind, cfg.metrics_host, cfg.metrics_port) == ("0.0.0.0", "0.0.0.0",
                                                                       METRICS_PORT)
        passphrase = pki.read_passphrase(cfg.model_copy(update={"passphrase": PassphraseSource(
            file=str(compose.host_path(p.name, cfg.passphrase.file)))}).passphrase, path)
        identity = pki.load_identity(resolve(path, cfg.identity_key), passphrase)
        assert pki.public_hex(identity) == p.identity_key
        assert cfg.mpc_listen_port is None

    # coordinator: `docker compose run coordinator mpcnet demo-jobs` runs `mpcnet demo-jobs`
    coord = services["coordinator"]
    assert coord["profiles"] == ["tools"] and coord["entrypoint"] == ["/usr/bin/env"]
    assert coord["command"][0] == "mpcnet"
    assert cli_command(coord["command"][1:]).name == "demo-jobs"
    workdir = coord["working_dir"]
    ccfg_path = compose.host_path("coordinator", f"{workdir}/coordinator/coordinator.yaml")
    ccfg = load_coordinator_config(ccfg_path)
    assert ccfg.broker == "mqtts://mosquitto:8883"
    assert compose.host_path("coordinator", posixpath.join(
        workdir, "coordinator", ccfg.roster)) == out / "roster.yaml"
    others = {t for _, t, _ in compose.mounts("coordinator") if t != f"{workdir}/coordinator"}
    assert others == {f"{workdir}/roster.yaml", ccfg.passphrase.file}
    assert set(coord["depends_on"]) == set(parties)
    assert not (out / "ca").exists()

    # broker: config files on its mount, the service's port, a certificate naming the service
    broker = services["mosquitto"]
    conf_path = compose.host_path("mosquitto", broker["command"][-1])
    conf = dict(line.split(" ", 1) for line in conf_path.read_text().splitlines()
                if line and not line.startswith("#"))
    for key in ("acl_file", "cafile", "certfile", "keyfile"):
        assert conf[key].startswith("/mosquitto/config/")
        assert compose.host_path("mosquitto", conf[key]).is_file()
    assert conf["listener"] == "8883 0.0.0.0" and "8883" in broker["expose"]
    assert conf["require_certificate"] == "true"
    acl = (out / "mosquitto" / "acl").read_text()
    assert all(f"user {name}" in acl for name in [*parties, "coordinator"])
    cert = x509.load_pem_x509_certificate((out / "mosquitto" / "broker.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mosquitto" in sans.get_values_for_type(x509.DNSName)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(roster.ca_cert.encode()))
    assert summary["broker_cert_reissued"] is True


def test_compose_keeps_passphrases_apart_from_keys(cluster, tmp_path):
    """No passphrase in a directory (or mount) holding the keys it decrypts; each container
    mounts its own directory, its own passphrase and the public roster, nothing else."""
    out = tmp_path / "deploy"
    emit_compose(cluster, out)
    compose = Compose(out)
    passphrases = {}
    for name in [*(p.name for p in load_roster(out / "roster.yaml").parties), "coordinator"]:
        source = cluster / name / "passphrase"
        copies = [p for p in out.rglob("*") if p.is_file()
                  and p.read_bytes().strip() == source.read_bytes().strip()]
        assert [c.relative_to(out) for c in copies] == [Path("passphrases") / name]
        assert copies[0].stat().st_mode & 0o777 == 0o600
        assert not list((out / name).rglob("passphrase*"))
        passphrases[name] = copies[0]
        sources = {s for s, _, _ in compose.mounts(name)}
        assert sources == {f"./{name}", "./roster.yaml", f"./passphrases/{name}"}
        # the passphrase's mount is a single file outside the keys' mount
        keys_target = next(t for s, t, _ in compose.mounts(name) if s == f"./{name}")
        pass_target = next(t for s, t, _ in compose.mounts(name) if s.startswith("./passph"))
        assert PurePosixPath(keys_target) not in PurePosixPath(pass_target).parents
    # the coordinator: no party's directory, inputs or keys
    assert not any(s.startswith("./party") for s, _, _ in compose.mounts("coordinator"))


def test_compose_passes_an_environment_passphrase_through(cluster, tmp_path):
    node_yaml = cluster / "party1" / "node.yaml"
    cfg = load_node_config(node_yaml)
    dump_yaml(node_yaml, cfg.model_copy(update={
        "passphrase": PassphraseSource(env="MPCNET_PASSPHRASE")}))
    emit_compose(cluster, tmp_path / "deploy")
    compose = Compose(tmp_path / "deploy")
    assert compose.services["party1"]["environment"] == ["MPCNET_PASSPHRASE"]
    assert not (tmp_path / "deploy" / "passphrases" / "party1").exists()
    assert load_node_config(tmp_path / "deploy" / "party1" / "node.yaml").passphrase.env


def test_compose_never_copies_one_time_secrets(cluster, tmp_path):
    legacy = cluster / "party0" / "data" / "keys" / "vault" / "presig"
    legacy.mkdir(parents=True)
    (legacy / "abc.sealed").write_text("one-time")
    emit_compose(cluster, tmp_path / "deploy")
    assert not list((tmp_path / "deploy").rglob("presig*"))


async def test_party_tls_reaches_the_broker_by_its_service_name(cluster, tmp_path):
    """A node's TLS client checks the broker certificate names "mosquitto"."""
    out = tmp_path / "deploy"
    emit_compose(cluster, out)
    roster = load_roster(out / "roster.yaml")
    broker = pki.server_context(out / "mosquitto" / "broker.crt", out / "mosquitto" / "broker.key",
                                None, roster.peer_certs_pem)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=broker)
    port = server.sockets[0].getsockname()[1]
    party = out / "party1"
    passphrase = (out / "passphrases" / "party1").read_bytes().strip()
    client = pki.client_context(party / "tls.crt", party / "tls.key", passphrase, roster.ca_cert)
    async with server:
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client,
                                                  server_hostname="mosquitto")
        writer.close()


def test_existing_broker_certificate_is_kept_when_it_names_the_service(tmp_path):
    init_cluster(tmp_path / "c", 3, 1, broker="mqtts://mosquitto:8883")
    summary = emit_compose(tmp_path / "c", tmp_path / "out")
    assert summary["broker_cert_reissued"] is False
    for name in ("broker.crt", "broker.key"):
        assert ((tmp_path / "out" / "mosquitto" / name).read_bytes()
                == (tmp_path / "c" / "broker" / name).read_bytes())


def test_unusable_cluster_directories_are_refused_before_writing(cluster, tmp_path):
    (cluster / "ca" / "ca.key").rename(tmp_path / "ca.key")  # a CA kept offline
    with pytest.raises(ClusterError, match="--broker mqtts://mosquitto:8883"):
        emit_compose(cluster, tmp_path / "out")
    (tmp_path / "ca.key").rename(cluster / "ca" / "ca.key")
    node_yaml = cluster / "party1" / "node.yaml"
    dump_yaml(node_yaml, load_node_config(node_yaml).model_copy(update={"inputs": "/srv/in.yaml"}))
    with pytest.raises(ClusterError, match="outside the party directory"):
        emit_compose(cluster, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_deploy_compose_cli(cluster):
    runner = CliRunner()
    result = runner.invoke(main, ["deploy", "compose", "--dir", str(cluster), "--json"])
    assert result.exit_code == 0, result.output
    compose = yaml.safe_load(result.output)["compose"]
    assert compose == str(cluster / "deploy" / "docker-compose.yml")
    again = runner.invoke(main, ["deploy", "compose", "--dir", str(cluster)])
    assert again.exit_code == 2 and "not empty" in again.output
    missing = runner.invoke(main, ["deploy", "compose", "--dir", str(cluster / "nope")])
    assert missing.exit_code == 2


def test_init_emit_deploy_writes_the_compose_project(tmp_path):
    out = tmp_path / "c"
    result = CliRunner().invoke(main, ["init", "-n", "3", "-t", "1", "--out", str(out),
                                       "--emit", "deploy", "--json"])
    assert result.exit_code == 0, result.output
    summary = yaml.safe_load(result.output)
    assert summary["deploy"]["compose"] == str(out / "deploy" / "docker-compose.yml")
    assert not summary["deploy"]["broker_cert_reissued"]  # init already named `mosquitto`
    services = yaml.safe_load((out / "deploy" / "docker-compose.yml").read_text())["services"]
    assert {"mosquitto", "party0", "party1", "party2", "coordinator"} <= set(services)


# -- demo-jobs --------------------------------------------------------------------------------

@pytest.mark.e2e
@pytest.mark.timeout(60)
def test_demo_jobs_against_a_running_cluster(make_cluster, tmp_path):
    cluster = make_cluster(parties=3, threshold=1)
    runner = CliRunner()
    args = ["demo-jobs", "--broker", cluster.broker_url, "--json"]
    ok = runner.invoke(main, [*args, "--dir", str(cluster.dir)])
    result = yaml.safe_load(ok.output)
    assert ok.exit_code == 0 and result["ok"] and result["plaintext_checked"], ok.output

    # a view with other inputs than the parties' fails the plaintext check
    view = tmp_path / "view"
    shutil.copytree(cluster.dir / "coordinator", view / "coordinator")
    shutil.copy(cluster.dir / "roster.yaml", view)
    for p in cluster.roster.parties:
        (view / p.name).mkdir()
        (view / p.name / "inputs.yaml").write_text("eth_vol_30d: 9.0\nbtc_vol_30d: 9.0\n")
    bad = runner.invoke(main, [*args, "--dir", str(view)])
    assert bad.exit_code == 1 and yaml.safe_load(bad.output)["ok"] is False, bad.output
    assert runner.invoke(main, [*args, "--dir", str(tmp_path / "empty")]).exit_code == 2


# -- Kubernetes -------------------------------------------------------------------------------

def k8s_docs() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc["apiVersion"] and doc["metadata"]["labels"]["app.kubernetes.io/name"]
            docs[doc["kind"], doc["metadata"]["name"]] = doc
    return docs


def test_k8s_manifests_agree_with_the_image_and_the_cli():
    docs = k8s_docs()
    assert set(docs) == {
        ("ConfigMap", "mpcnet-party-config"), ("Secret", "mpcnet-party-passphrase"),
        ("Secret", "mpcnet-party-keys"), ("Secret", "mpcnet-party-inputs"),
        ("StatefulSet", "mpcnet-party"), ("Service", "mpcnet-party-mpc"),
        ("Service", "mpcnet-party"), ("ConfigMap", "mpcnet-mosquitto"),
        ("Secret", "mpcnet-mosquitto-tls"), ("Deployment", "mpcnet-mosquitto"),
        ("Service", "mpcnet-mosquitto")}

    sts = docs["StatefulSet", "mpcnet-party"]
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    assert spec["replicas"] == 1 and ("Service", spec["serviceName"]) in docs
    assert spec["selector"]["matchLabels"].items() <= sts["spec"]["template"]["metadata"][
        "labels"].items()
    claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for v in volumes.values():
        if "configMap" in v:
            assert ("ConfigMap", v["configMap"]["name"]) in docs
        if "secret" in v:
            assert ("Secret", v["secret"]["secretName"]) in docs
    node, = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for c in [node] for m in c["volumeMounts"]}
    assert set(mounts.values()) <= set(volumes) | claims
    assert mounts["/data"] in claims

    # ports and probes: the metrics port the image exposes and health-checks, /healthz
    ports = {p["name"]: p["containerPort"] for p in node["ports"]}
    assert ports["metrics"] == METRICS_PORT
    for probe in ("readinessProbe", "livenessProbe"):
        assert node[probe]["httpGet"]["path"] == "/healthz"
        assert ports[node[probe]["httpGet"]["port"]] == METRICS_PORT
    assert node["resources"]["requests"] and node["resources"]["limits"]
    for svc in ("mpcnet-party-mpc", "mpcnet-party"):
        for port in docs["Service", svc]["spec"]["ports"]:
            assert port["targetPort"] in ports

    # the command: the image's entrypoint is mpcnet, args a real command with its config
    assert "command" not in node and cli_command(node["args"]).name == "node"
    config_path = PurePosixPath(node["args"][node["args"].index("--config") + 1])
    assert mounts[str(config_path.parent)] == "config"
    data = docs["ConfigMap", "mpcnet-party-config"]["data"]
    cfg = NodeConfig.model_validate(yaml.safe_load(data[config_path.name]))
    assert cfg.metrics_port == METRICS_PORT and cfg.metrics_host == "0.0.0.0"
    assert cfg.mpc_listen_port == ports["mpc"] and cfg.data_dir == "/data"
    Policy.model_validate(yaml.safe_load(data[cfg.policy]))
    assert cfg.roster in data
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in node["env"] if "valueFrom" in e}
    passphrase_secret = env[cfg.passphrase.env]["name"]
    assert cfg.passphrase.env in docs["Secret", passphrase_secret]["stringData"]
    secret_of = {v["name"]: v["secret"]["secretName"] for v in volumes.values() if "secret" in v}
    init_mounts = {m["mountPath"]: m["name"] for m in pod["initContainers"][0]["volumeMounts"]}
    for path in (cfg.identity_key, cfg.tls_key, cfg.tls_cert, cfg.inputs):
        volume = mounts[str(PurePosixPath(path).parent)]
        if volume == "keys":  # copied from the keys Secret by the init container
            volume = init_mounts["/secret"]
        assert PurePosixPath(path).name in docs["Secret", secret_of[volume]]["stringData"]
    # the passphrase is in a Secret of its own, never mounted as a file, nor beside the keys
    keys_secret = secret_of[init_mounts["/secret"]]
    assert passphrase_secret != keys_secret and passphrase_secret not in secret_of.values()
    assert set(docs["Secret", passphrase_secret]["stringData"]) == {cfg.passphrase.env}
    assert not any(cfg.passphrase.env in docs["Secret", s]["stringData"]
                   for s in secret_of.values())
    init, = pod["initContainers"]  # copies the key files from the Secret with mode 0600
    assert "install -m 0600" in init["command"][-1] and init["image"] == node["image"]

    # the broker: the configuration mpc_nodes.wire.mosquitto generates, on the mounted paths
    broker = docs["Deployment", "mpcnet-mosquitto"]["spec"]["template"]["spec"]
    mosq, = broker["containers"]
    assert mosq["image"].startswith("eclipse-mosquitto:2")
    mount, = mosq["volumeMounts"]
    base = PurePosixPath(mount["mountPath"])
    assert mosq["command"] == ["mosquitto", "-c", str(base / "mosquitto.conf")]
    conf = docs["ConfigMap", "mpcnet-mosquitto"]["data"]["mosquitto.conf"]
    assert conf == mosquitto.config(8883, "0.0.0.0", base / "ca.crt", base / "broker.crt",
                                    base / "broker.key", base / "acl")
    sources = next(v for v in broker["volumes"] if v["name"] == mount["name"])["projected"]
    files = set()
    for s in sources["sources"]:
        kind, ref = ("ConfigMap", s["configMap"]) if "configMap" in s else ("Secret", s["secret"])
        doc = docs[kind, ref["name"]]
        files |= set(doc.get("data") or doc.get("stringData"))
    assert files == {"mosquitto.conf", "acl", "ca.crt", "broker.crt", "broker.key"}
    assert docs["Service", "mpcnet-mosquitto"]["spec"]["ports"][0]["port"] == 8883


def test_k8s_manifests_pass_strict_schema_validation():
    """Every manifest in deploy/k8s against the Kubernetes schemas (kubernetes-validate,
    --strict: unknown fields are errors). mpcnet itself generates no manifests."""
    files = sorted(str(p) for p in (ROOT / "deploy" / "k8s").glob("*.yaml"))
    result = subprocess.run([sys.executable, "-m", "kubernetes_validate", "--strict", *files],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = result.stdout.count(" passed for resource ") + result.stderr.count(
        " passed for resource ")
    assert passed == len(k8s_docs()), result.stdout + result.stderr


def test_compose_carries_each_party_share_passphrase(cluster, tmp_path):
    """A party whose key shares have a passphrase of their own (node.yaml share_passphrase)
    gets it in its container as it gets its identity passphrase: a file moved out of its
    directory and mounted alone, or an environment variable passed through."""
    shares_file = cluster / "party0" / "share-passphrase"
    pki.write_private(shares_file, b"party0's share passphrase\n")
    for name, source in (("party0", PassphraseSource(file="share-passphrase")),
                         ("party1", PassphraseSource(env="PARTY1_SHARES"))):
        node_yaml = cluster / name / "node.yaml"
        dump_yaml(node_yaml, load_node_config(node_yaml).model_copy(update={
            "share_passphrase": source}))
    out = tmp_path / "deploy"
    emit_compose(cluster, out)
    compose = Compose(out)

    path = out / "party0" / "node.yaml"
    cfg = load_node_config(path)
    assert cfg.share_passphrase.file != cfg.passphrase.file
    host = compose.host_path("party0", cfg.share_passphrase.file)
    assert host == out / "passphrases" / "party0.shares"
    assert pki.read_passphrase(PassphraseSource(file=str(host)), path) == (
        b"party0's share passphrase")
    identity = compose.host_path("party0", cfg.passphrase.file)
    assert pki.read_passphrase(PassphraseSource(file=str(identity)), path) == (
        cluster / "party0" / "passphrase").read_bytes().strip()
    assert not (out / "party0" / "share-passphrase").exists()  # not beside the keys
    assert "environment" not in compose.services["party0"]

    cfg1 = load_node_config(out / "party1" / "node.yaml")
    assert cfg1.share_passphrase == PassphraseSource(env="PARTY1_SHARES")
    assert compose.services["party1"]["environment"] == ["PARTY1_SHARES"]
    assert not (out / "passphrases" / "party1.shares").exists()
    # a party without one keeps using its passphrase for the shares, and mounts nothing more
    assert load_node_config(out / "party2" / "node.yaml").share_passphrase is None
    assert {t for _, t, _ in compose.mounts("party2")} == {
        "/data", "/roster.yaml", "/run/secrets/mpcnet-passphrase"}


def test_compose_copies_no_held_roster(cluster, tmp_path):
    """The output's roster is re-signed for the containers' hosts (same version, other
    contents): a held copy of the source's would make its party or coordinator refuse it."""
    from mpc_nodes.node.held_roster import HELD
    for d in ("party0/data", "coordinator"):
        shutil.copy(cluster / "roster.yaml", cluster / d / HELD)
    emit_compose(cluster, tmp_path / "deploy")
    assert not list((tmp_path / "deploy").rglob(HELD))

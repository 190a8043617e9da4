"""Cluster directories: `mpcnet init` creates one; `cluster up/down` runs it on one machine.

Layout made by init (private files are 0600, directories holding secrets 0700):

    roster.yaml                 public: cluster id, threshold, parties, coordinators, their
                                pinned keys and certificates, every operator's signature
    ca/ca.key, ca/passphrase    a CA that issues the broker's certificate (only that)
    broker/broker.{crt,key}     TLS for the embedded broker
    partyI/node.yaml            party I's own config
    partyI/{identity.key,tls.key,tls.crt,bundle.yaml,passphrase,inputs.yaml}, partyI/data/
    coordinator/{coordinator.yaml,identity.key,tls.key,tls.crt,bundle.yaml,passphrase}

It is the one-machine shortcut of the operators' ceremony (docs/OPERATOR.md): each party and
the coordinator are made by mpc_nodes.onboarding in their own directory, the roster is
assembled from their join bundles and signed by each of them; only here does one machine hold
every operator's secrets (and passphrase files next to the keys).
    run/                        state of a running local cluster (cluster up); run/procs/
                                records every process of it (mpc_nodes.deploy.cluster_procs)
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from keyshare.atomic import write_atomic

from mpc_nodes import governance, onboarding, pki
from mpc_nodes.config import (SECURITY_MODES, CoordinatorConfig, NodeConfig, PassphraseSource,
                              Roster, dump_yaml, load_coordinator_config, load_node_config,
                              load_roster, parse_broker_url)
from mpc_nodes.deploy import cluster_procs
from mpc_nodes.errors import UserError
from mpc_nodes.node.volsurface import example_surface_yaml


class ClusterError(UserError, RuntimeError):
    """A cluster directory cannot be created, started or stopped as asked."""


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def _worker_share() -> tuple[int, int]:
    """(k, n): this process hands out only the ports p with p % n == k.  Under pytest-xdist
    worker gwK of n (and every process its tests start: they inherit its environment) has
    ports of its own, so a port one worker has chosen but not bound yet is never another's;
    elsewhere (n = 1) every port."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    if count > 1 and worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:]) % count, count
    return 0, 1


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now and outside the kernel's ephemeral range, so that the
    outgoing connections made before it is bound (to the broker, between parties) cannot
    take it in the meantime; never the same port twice in one process, so that ports
    chosen together (a cluster's broker, MPC and metrics ports) stay distinct, and never
    one of another test worker's (_worker_share)."""
    low, high = _ephemeral_range()
    share, workers = _worker_share()
    candidates = [p for p in [*range(10_000, low), *range(high + 1, 65_536)]
                  if p % workers == share]
    for port in random.sample(candidates, min(200, len(candidates))):
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # everything outside the ephemeral range is taken
        s.bind((host, 0))
        return s.getsockname()[1]


def validate_shape(parties: int, threshold: int) -> None:
    if parties < 3:
        raise ClusterError(f"--parties must be at least 3 (got {parties}): a threshold t >= 1"
                           f" needs n >= 2t + 1")
    if threshold < 1:
        raise ClusterError(f"--threshold {threshold} is not allowed: t must be at least 1 (with"
                           f" t = 0 each party's key share is the whole key)")
    if not 2 * threshold < parties:
        raise ClusterError(f"--threshold {threshold} is not allowed with {parties} parties:"
                           f" need 1 <= t < n/2, i.e. t <= {(parties - 1) // 2}")


def _passphrase_file(directory: Path) -> bytes:
    value = pki.new_passphrase()
    pki.write_private(directory / "passphrase", value.encode() + b"\n")
    return value.encode()


def _local_operator(directory: Path, name: str, role: str, host: str | None = None,
                    port: int | None = None) -> onboarding.JoinBundle:
    """One operator of the shortcut, made as an operator makes its own (plus a passphrase
    file next to its keys, which the ceremony never writes)."""
    directory.mkdir(mode=0o700)
    return onboarding.create_operator(directory, name, role, _passphrase_file(directory),
                                      host, port)


def init_cluster(out: Path, parties: int, threshold: int, host: str = "127.0.0.1",
                 base_port: int | None = None, broker: str | None = None,
                 cluster_id: str | None = None, coordinator: str = "coordinator",
                 inputs: dict[str, list[float]] | None = None,
                 security: str = onboarding.NEW_SECURITY) -> Roster:
    """Create a complete cluster directory; refuse to touch a non-empty one.  `security`:
    the roster's security mode (a new cluster's default: malicious)."""
    validate_shape(parties, threshold)
    if security not in SECURITY_MODES:
        raise ClusterError(f"--security {security!r} is not a security mode: give one of"
                           f" {', '.join(SECURITY_MODES)}")
    broker = broker or f"mqtts://127.0.0.1:{free_port()}"
    broker_host = parse_broker_url(broker)[1]  # validated before anything is written
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ClusterError(f"{out} exists and is not empty; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    cluster_id = cluster_id or f"mpcnet-{secrets.token_hex(3)}"

    (out / "ca").mkdir(mode=0o700)
    ca_key, ca_cert = pki.new_ca(cluster_id)
    pki.write_key(out / "ca" / "ca.key", ca_key, _passphrase_file(out / "ca"))
    (out / "ca" / "ca.crt").write_text(pki.cert_pem(ca_cert))

    (out / "broker").mkdir(mode=0o700)
    # the broker certificate must name the host the clients connect to
    dns = sorted({"localhost", "mpcnet-broker"} | ({broker_host} - {"127.0.0.1"}
                                                    if not pki.is_ip(broker_host) else set()))
    ips = sorted({"127.0.0.1"} | ({broker_host} if pki.is_ip(broker_host) else set()))
    key, cert = pki.issue_cert(ca_key, ca_cert, "mpcnet-broker", dns, ips, server=True,
                               client=False)
    pki.write_key(out / "broker" / "broker.key", key, None)  # brokers read plain PEM keys
    (out / "broker" / "broker.crt").write_text(pki.cert_pem(cert))

    bundles = []
    for i in range(parties):
        name = f"party{i}"
        pdir = out / name
        bundles.append(_local_operator(pdir, name, "node", host,
                                       base_port + i if base_port else free_port()))
        (pdir / "data").mkdir(mode=0o700)
        dump_yaml(pdir / "node.yaml", NodeConfig(
            roster="../roster.yaml", party=name, identity_key=onboarding.IDENTITY_KEY,
            tls_cert=onboarding.TLS_CERT, tls_key=onboarding.TLS_KEY,
            passphrase=PassphraseSource(file="passphrase"), broker=broker,
            mpc_bind=host if pki.is_ip(host) else "0.0.0.0", metrics_port=free_port()))
        values = {k: v[i] for k, v in (inputs or default_inputs(parties)).items()}
        (pdir / "inputs.yaml").write_text(
            "# This operator's private inputs: they leave this machine only as secret shares.\n"
            + "".join(f"{k}: {v}\n" for k, v in values.items()))
        os.chmod(pdir / "inputs.yaml", 0o600)
        (pdir / "data" / "surfaces").mkdir(mode=0o700)
        for underlying, atm in EXAMPLE_SURFACES.items():
            path = pdir / "data" / "surfaces" / f"{underlying}.yaml"
            path.write_text(example_surface_yaml(underlying, atm, random.Random()))
            os.chmod(path, 0o600)
        (pdir / "policy.yaml").write_text(DEFAULT_POLICY)

    cdir = out / "coordinator"
    bundles.append(_local_operator(cdir, coordinator, "coordinator"))
    dump_yaml(cdir / "coordinator.yaml", CoordinatorConfig(
        roster="../roster.yaml", name=coordinator, identity_key=onboarding.IDENTITY_KEY,
        passphrase=PassphraseSource(file="passphrase"), broker=broker,
        tls_cert=onboarding.TLS_CERT, tls_key=onboarding.TLS_KEY))
    roster = sign_locally(out, onboarding.assemble(bundles, cluster_id, threshold,
                                                   ca_cert=pki.cert_pem(ca_cert),
                                                   security=security))
    dump_yaml(out / "roster.yaml", roster)
    return roster


def _local_identities(cluster_dir: Path):
    """(name, identity key) of every operator directory of a one-machine cluster whose key
    unlocks here (one whose passphrase is elsewhere, e.g. in an unset variable, is left out)."""
    configs = [(c, load_node_config(c)) for c in sorted(Path(cluster_dir).glob("*/node.yaml"))]
    configs += [(c, load_coordinator_config(c))
                for c in sorted(Path(cluster_dir).glob("*/coordinator.yaml"))]
    for path, cfg in configs:
        try:
            key = pki.load_identity(path.parent / cfg.identity_key,
                                    pki.read_passphrase(cfg.passphrase, path))
        except pki.KeyFileError:
            continue
        yield getattr(cfg, "party", None) or cfg.name, key


def sign_locally(cluster_dir: Path, roster: Roster) -> Roster:
    """The roster signed by every operator of it whose directory is in `cluster_dir` (the
    shortcut: one machine holds them all); a node refuses it, naming who did not sign, if a
    key did not unlock here."""
    listed = governance.operators(roster)
    for name, key in _local_identities(cluster_dir):
        if listed.get(name) == pki.public_hex(key):
            roster = governance.sign(roster, name, key)
    return roster


def amend_roster(cluster_dir: Path, **changes) -> Roster:
    """Replace a one-machine cluster's roster by its next version with `changes` (fields of
    Roster), signed by every local operator, and return it."""
    path = Path(cluster_dir) / "roster.yaml"
    current = load_roster(path)
    new = Roster.model_validate({**current.model_dump(), **changes,
                                 "version": current.version + 1, "signatures": []})
    new = sign_locally(cluster_dir, new)
    governance.check_update(current, new)
    dump_yaml(path, new)
    return new


EXAMPLE_SURFACES = {"ETH": 0.65, "BTC": 0.5}  # at-the-money vol levels of the examples

DEFAULT_POLICY = """\
# This operator's signing policy: the node refuses to help sign anything else.
# Fields are explained in configs/policy.example.yaml (ERC-20 tokens go under `tokens`).
version: 2
chain_ids: [31337, 11155111]            # local devnet and Sepolia
eth:                                    # in wei; fees (gas × maxFeePerGas) count as spent
  recipients: []                        # add the settlement contracts you accept
  max_fee_wei: 10000000000000000        # 0.01 ETH of fees per transaction
  max_per_tx_wei: 1000000000000000000   # 1 ETH (value + max fee) per transaction
  daily_cap_wei: 5000000000000000000    # 5 ETH per key per rolling 24 h
tokens: []                              # no ERC-20 calls until you list a token
"""


def default_inputs(parties: int) -> dict[str, list[float]]:
    """Plausible example inputs: each operator's 30-day ETH and BTC volatility estimates."""
    rng = random.Random()
    return {"eth_vol_30d": [round(rng.uniform(0.45, 0.85), 4) for _ in range(parties)],
            "btc_vol_30d": [round(rng.uniform(0.35, 0.65), 4) for _ in range(parties)]}


# -- running a local cluster ------------------------------------------------------------------

@dataclass
class RunState:
    """What `cluster up` leaves in run/state.json for `cluster down` and the coordinator."""

    supervisor_pid: int
    broker: str
    nodes: dict[str, int]

    @staticmethod
    def path(cluster_dir: Path) -> Path:
        return Path(cluster_dir) / "run" / "state.json"

    @classmethod
    def load(cls, cluster_dir: Path) -> "RunState | None":
        try:
            return cls(**json.loads(cls.path(cluster_dir).read_text()))
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return None

    def save(self, cluster_dir: Path) -> None:
        write_atomic(self.path(cluster_dir), json.dumps(self.__dict__).encode())


def party_dirs(cluster_dir: Path) -> list[Path]:
    dirs = sorted((p for p in Path(cluster_dir).glob("party*") if (p / "node.yaml").exists()),
                  key=lambda p: int(p.name.removeprefix("party") or 0))
    if not dirs:
        raise ClusterError(f"{cluster_dir} has no party*/node.yaml: run mpcnet init first")
    return dirs


def node_command(config: Path, broker: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "mpc_nodes.cli.app", "node", "--config", str(config)]
    return cmd + (["--broker", broker] if broker else [])


def start_supervisor(cluster_dir: Path, broker: str | None) -> int:
    """Start `cluster supervise` detached and record it; return its pid.  Refuse while any
    recorded process of this cluster still runs (cluster_procs), naming them."""
    cluster_dir = Path(cluster_dir).resolve()
    (cluster_dir / "run").mkdir(exist_ok=True)
    with open(cluster_dir / "run" / "up.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `cluster up` at once: the second sees the first
        _adopt(cluster_dir)
        running = cluster_procs.live(cluster_dir)
        if any(p.name == "supervisor" for p in running):
            raise ClusterError(f"cluster in {cluster_dir} is already up ("
                               f"{', '.join(map(str, running))}); run mpcnet cluster down first")
        if running:
            raise ClusterError(f"processes of the cluster in {cluster_dir} still run without"
                               f" their supervisor: {', '.join(map(str, running))}; run mpcnet"
                               f" cluster down first")
        log = open(cluster_dir / "run" / "supervisor.log", "ab")
        cmd = [sys.executable, "-m", "mpc_nodes.cli.app", "cluster", "supervise", "--dir",
               str(cluster_dir)]
        proc = subprocess.Popen(cmd + (["--broker", broker] if broker else []), stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        log.close()
        cluster_procs.record(cluster_dir, "supervisor", proc.pid)
    return proc.pid


def wait_for_state(cluster_dir: Path, pid: int, timeout: float = 20.0) -> RunState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = RunState.load(cluster_dir)
        if state and state.supervisor_pid == pid:
            return state
        if not _alive(pid):
            log = Path(cluster_dir) / "run" / "supervisor.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise ClusterError(f"cluster supervisor exited during start-up:\n{tail}")
        time.sleep(0.05)
    raise ClusterError(f"cluster supervisor did not start within {timeout:g}s")


def stop_cluster(cluster_dir: Path, timeout: float = 20.0) -> list[str]:
    """Stop every process of a local cluster, with or without its supervisor; the ones that
    were running (empty if none)."""
    _adopt(cluster_dir)
    stopped = cluster_procs.stop_all(cluster_dir, timeout)
    RunState.path(cluster_dir).unlink(missing_ok=True)
    return [str(p) for p in stopped]


def _adopt(cluster_dir: Path) -> None:
    """Record the processes of a cluster started by an earlier version (run/state.json only)."""
    state = RunState.load(cluster_dir)
    if state and not cluster_procs.recorded(cluster_dir):
        for name, pid in {"supervisor": state.supervisor_pid, **state.nodes}.items():
            if _runs_from(pid, Path(cluster_dir).resolve()):  # not a reused pid
                cluster_procs.record(cluster_dir, name, pid)


def _runs_from(pid: int, cluster_dir: Path) -> bool:
    try:
        return str(cluster_dir).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True

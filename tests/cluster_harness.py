"""Real local clusters for end-to-end tests: a broker process (embedded amqtt, or the machine's
Mosquitto) and one `mpcnet node` process per party, each of which the test can kill or
restart.  Everything started here is killed at teardown.
"""

from __future__ import annotations

import asyncio
import getpass
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from mpc_nodes.wire import mosquitto
from mpc_nodes.deploy.cluster import free_port, init_cluster
from mpc_nodes.config import dump_yaml, load_node_config, parse_broker_url
from mpc_nodes.client.coordinator import Coordinator
from mpc_nodes.onboarding import NEW_SECURITY
from tests.faultproxy import FaultProxy

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO_URL = "mqtt://127.0.0.1:1883"


async def wait_until(predicate, timeout: float, what, interval: float = 0.05):
    """Poll `predicate` (a plain or an async function) until it returns a truthy value, and
    return that value; after `timeout` seconds fail saying `what` did not happen (`what` may
    be a function, called then, to show the state at the failure).  Tests wait for the
    condition they need (a process up, a log line, a job state), never a fixed time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what() if callable(what) else what}")
        await asyncio.sleep(interval)


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_get(port: int, path: str) -> tuple[int, str]:
    """GET http://127.0.0.1:port/path: (status, body), error statuses included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def eth_policy(recipient: str, daily_cap_wei: int = 5 * 10**18) -> str:
    """A version 2 policy.yaml allowing plain ETH transfers to `recipient` on Sepolia."""
    return f"""version: 2
chain_ids: [11155111]
eth:
  recipients: ["{recipient}"]
  max_fee_wei: 10000000000000000
  max_per_tx_wei: 1000000000000000000
  daily_cap_wei: {daily_cap_wei}
"""


def write_policies(cluster: "LocalCluster", policy: str) -> "LocalCluster":
    """Give every party of `cluster` the same policy.yaml."""
    for i in range(cluster.roster.n):
        (cluster.dir / f"party{i}" / "policy.yaml").write_text(policy)
    return cluster


def mosquitto_available() -> bool:
    """The machine's Mosquitto answers on 127.0.0.1:1883."""
    return port_open("127.0.0.1", 1883)


def mosquitto_binary() -> str | None:
    """A Mosquitto binary we can start privately (to stop and restart it in tests)."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.path.exists(p)),
        None)


def _env(first: Path | None = None) -> dict:
    """Environment for child processes; `first` is put ahead of the repo on PYTHONPATH."""
    paths = ([str(first)] if first else []) + [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p))


class LocalCluster:
    """A cluster directory plus the processes that run it."""

    def __init__(self, root: Path, parties: int = 3, threshold: int = 1,
                 broker: str = "embedded", mpc_proxy: bool = False, broker_proxy: bool = False,
                 security: str = NEW_SECURITY, **node_settings):
        """broker: "embedded" (amqtt process), "mosquitto" (the machine's, on 1883),
        "mosquitto-private" (a Mosquitto process of our own on a free port) or
        "mosquitto-tls" (our own Mosquitto with the generated TLS, certificate-login and ACL
        configuration of mpc_nodes.wire.mosquitto, with its coordinator listener on
        `coordinator_broker_url`).  security: the roster's mode, "malicious" (a new
        cluster's default) or "semi-honest"."""
        self.dir = root / "cluster"
        self.roster = init_cluster(self.dir, parties, threshold, security=security)
        self.broker_kind = broker
        if broker == "embedded":
            self.broker_url = load_node_config(self.dir / "party0" / "node.yaml").broker
        elif broker == "mosquitto":
            self.broker_url = MOSQUITTO_URL
        elif broker == "mosquitto-tls":
            self.broker_url = f"mqtts://127.0.0.1:{free_port()}"
        else:
            self.broker_url = f"mqtt://127.0.0.1:{free_port()}"
        self.node_broker_url = self.broker_url
        self.coordinator_broker_url = (f"mqtts://127.0.0.1:{free_port()}"
                                       if broker == "mosquitto-tls" else self.broker_url)
        self.mpc_proxies: dict[int, FaultProxy] = {}
        self.broker_proxy: FaultProxy | None = None
        for i in range(parties):
            settings = dict(node_settings)
            if mpc_proxy:  # peers dial the roster port, where a proxy forwards to the node
                settings["mpc_listen_port"] = free_port()
            if settings:
                self.configure_node(i, **settings)
            if mpc_proxy:
                self.mpc_proxies[i] = FaultProxy(settings["mpc_listen_port"],
                                                 listen_port=self.roster.parties[i].mpc_port)
        if broker_proxy:
            scheme, _, port = self.broker_url.rpartition(":")
            self.broker_proxy = FaultProxy(int(port))
            self.node_broker_url = f"{scheme}:{self.broker_proxy.port}"
        self.nodes: dict[int, subprocess.Popen] = {}
        self.broker_proc: subprocess.Popen | None = None

    def set_limits(self, **limits) -> None:
        """Change the roster's limits (e.g. policy_quorum) before the nodes start: its next
        version, signed by every operator (validated)."""
        from mpc_nodes.deploy.cluster import amend_roster
        self.roster = amend_roster(self.dir, limits=self.roster.limits.model_copy(
            update=limits))

    def configure_node(self, i: int, **settings) -> None:
        """Change fields of party i's node.yaml (before it starts)."""
        path = self.dir / f"party{i}" / "node.yaml"
        dump_yaml(path, load_node_config(path).model_copy(update=settings))

    # -- processes --------------------------------------------------------------------

    def _spawn(self, args: list[str], log: Path, pythonpath: Path | None = None,
               env: dict | None = None, module: str = "mpc_nodes.cli.app"):
        with open(log, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", module, *args], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**_env(pythonpath), **(env or {})}, cwd=self.dir,
                                    start_new_session=True)

    def start_broker(self, timeout: float = 15.0) -> None:
        """Start the broker and wait until it accepts connections."""
        self._spawn_broker()
        self._wait_broker(timeout)

    def _spawn_broker(self) -> None:
        _, host, port = parse_broker_url(self.broker_url)
        if self.broker_kind == "mosquitto":
            return
        if self.broker_kind == "embedded":
            self.broker_proc = self._spawn(["broker", "--dir", str(self.dir)],
                                           self.dir / "broker.log")
        else:
            if self.broker_kind == "mosquitto-tls":  # the generated production configuration
                conf = mosquitto.write_files(
                    self.dir, self.dir / "mosquitto", port, host, run_as=getpass.getuser(),
                    coordinator_port=parse_broker_url(self.coordinator_broker_url)[2])
            else:
                conf = self.dir / "mosquitto.conf"
                conf.write_text(f"listener {port} {host}\nallow_anonymous true\n"
                                "set_tcp_nodelay true\npersistence false\n")
            with open(self.dir / "broker.log", "ab") as out:
                self.broker_proc = subprocess.Popen([mosquitto_binary(), "-c", str(conf)],
                                                    stdout=out, stderr=subprocess.STDOUT,
                                                    start_new_session=True)

    def _wait_broker(self, timeout: float) -> None:
        """Poll the broker's port (the harness's start is synchronous: no event loop)."""
        _, host, port = parse_broker_url(self.broker_url)
        deadline = time.monotonic() + timeout
        while not port_open(host, port):
            if (self.broker_proc is not None and self.broker_proc.poll() is not None) \
                    or time.monotonic() > deadline:
                raise RuntimeError(f"{self.broker_kind} broker did not start:\n"
                                   + (self.dir / "broker.log").read_text()[-2000:])
            time.sleep(0.05)

    def stop_broker(self) -> None:
        if self.broker_proc is not None:
            _killgroup(self.broker_proc, signal.SIGKILL)
            self.broker_proc = None

    def start_node(self, i: int, pythonpath: Path | None = None,
                   env: dict | None = None, broker: str | None = None) -> None:
        """Start party i; `pythonpath` lets a test run it on other code, `env` adds
        environment variables (e.g. a test-only hook), `broker` another broker URL (e.g. a
        fault proxy of its own)."""
        cfg = self.dir / f"party{i}" / "node.yaml"
        self.nodes[i] = self._spawn(["--log-level", "INFO", "node", "--config", str(cfg),
                                     "--broker", broker or self.node_broker_url],
                                    self.dir / f"party{i}" / "node.log", pythonpath, env)

    def stop_node(self, i: int, sig=signal.SIGTERM) -> int | None:
        proc = self.nodes.pop(i, None)
        return _killgroup(proc, sig) if proc else None

    def stop_nodes(self, sig=signal.SIGTERM) -> None:
        """Stop every node at once."""
        _killgroups([self.nodes.pop(i) for i in list(self.nodes)], sig)

    def start(self) -> "LocalCluster":
        """Start the broker and every node.  The nodes start while the broker does (each
        retries until the broker answers): their start-up, not the broker's, is the long one."""
        self._spawn_broker()
        for i in range(self.roster.n):
            self.start_node(i)
        self._wait_broker(15.0)
        return self

    def close(self) -> None:
        self.stop_nodes(signal.SIGKILL)
        self.stop_broker()
        for proxy in [*self.mpc_proxies.values(), self.broker_proxy]:
            if proxy is not None:
                proxy.close()

    def log(self, i: int) -> str:
        return (self.dir / f"party{i}" / "node.log").read_text(errors="replace")

    async def wait_log(self, i: int, text: str, timeout: float = 30.0) -> None:
        """Wait until party i's log mentions `text` (node start-up is slow on a busy CI box)."""
        await wait_until(lambda: text in self.log(i), timeout,
                         lambda: f"party{i} logs {text!r}:\n{self.log(i)[-2000:]}")

    def audit_events(self, i: int) -> list[dict]:
        """Party i's audit log so far, one dict per event (a line still being written is
        left out)."""
        path = self.dir / f"party{i}" / "data" / "audit.log"
        events = []
        for line in (path.read_text().splitlines() if path.exists() else []):
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
        return events

    async def wait_audited(self, i: int, event: str, job_id: str, timeout: float = 30.0) -> None:
        """Wait until party i's audit log records `event` ("request", "start", "result") for
        the job."""
        await wait_until(lambda: any(e.get("event") == event and e.get("job_id") == job_id
                                     for e in self.audit_events(i)),
                         timeout, f"party{i} audits {event} of job {job_id}")

    def sessions_connected(self) -> list[int]:
        """Per party, how many MPC sessions its log says it has connected."""
        return [len(re.findall(r"session \S+: connected to ", self.log(i)))
                for i in range(self.roster.n)]

    async def wait_in_session(self, before: list[int], timeout: float = 60.0) -> None:
        """Wait until every party has connected one more session than `before` (from
        `sessions_connected()`): a job started since is past its set-up, in the protocol."""
        await wait_until(lambda: all(n > b for n, b in zip(self.sessions_connected(), before)),
                         timeout, "every party connected the session")

    def bus_drops(self) -> list[int]:
        """Per party, how often its log says it lost or could not reach the broker."""
        return [len(re.findall(r"mpcnet\.bus (?:WARNING|ERROR)", self.log(i)))
                for i in range(self.roster.n)]

    async def wait_bus_dropped(self, before: list[int], timeout: float = 30.0) -> None:
        """Wait until every running party has logged a broker loss since `before` (from
        `bus_drops()`)."""
        def dropped():
            return all(n > before[i] for i, n in enumerate(self.bus_drops()) if i in self.nodes)
        await wait_until(dropped, timeout, "every running party lost the broker")

    # -- coordinator ------------------------------------------------------------------

    def coordinator(self) -> Coordinator:
        return Coordinator(self.dir / "coordinator" / "coordinator.yaml", self.broker_url)

    async def wait_online(self, c: Coordinator, names: set[str] | None = None,
                          timeout: float = 30.0) -> None:
        names = names or {p.name for p in self.roster.parties}
        await wait_until(lambda: names <= c.online(), timeout,
                         lambda: f"parties {sorted(names - c.online())} online")

    async def wait_offline(self, c: Coordinator, name: str, timeout: float = 15.0) -> None:
        await wait_until(lambda: name not in c.online(), timeout, f"{name} offline")


def _killgroup(proc: subprocess.Popen, sig) -> int | None:
    """Signal a process and everything it started (its MPC engine); wait for it."""
    return _killgroups([proc], sig)[0]


def _killgroups(procs: list[subprocess.Popen], sig) -> list[int | None]:
    """Signal every process and what it started at once, then wait for each (a graceful stop
    of several nodes takes as long as the slowest, not their sum)."""
    for proc in procs:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=15))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            codes.append(proc.wait(timeout=5))
    return codes

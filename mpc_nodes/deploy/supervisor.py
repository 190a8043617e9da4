"""`cluster supervise`: the process behind `cluster up`.  It runs the embedded broker in-process
(unless an external broker is given), one node process per party, restarts a node that dies,
on SIGHUP has the broker and every node take the roster file's next version, and on SIGTERM
stops the nodes (SIGTERM, then SIGKILL after a grace period) and the broker.  Each node is
recorded in run/procs/ and dies with the supervisor (cluster_procs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from mpc_nodes import governance
from mpc_nodes.config import ConfigError, Roster, load_node_config, load_roster, parse_broker_url
from mpc_nodes.deploy import cluster_procs
from mpc_nodes.deploy.cluster import RunState, node_command, party_dirs
from mpc_nodes.wire.broker import EmbeddedBroker

log = logging.getLogger("mpcnet.supervisor")
STOP_GRACE_S = 10.0
RESTART_DELAY_S = 1.0


class Supervisor:
    def __init__(self, cluster_dir: Path, broker: str | None):
        self.dir = Path(cluster_dir).resolve()
        self.external_broker = broker
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()
        self.roster = load_roster(self.dir / "roster.yaml")  # the one the broker runs with

    async def _spawn(self, pdir: Path) -> cluster_procs.Proc | None:
        logfile = open(pdir / "node.log", "ab")
        self.procs[pdir.name] = await asyncio.create_subprocess_exec(
            *node_command(pdir / "node.yaml", self.external_broker), stdout=logfile,
            stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=cluster_procs.die_with_parent(os.getpid()))
        logfile.close()
        return cluster_procs.record(self.dir, pdir.name, self.procs[pdir.name].pid)

    async def _watch(self, pdir: Path) -> None:
        """Keep one node running until the supervisor stops."""
        while not self.stopping.is_set():
            proc = await self._spawn(pdir)
            self._save()
            code = await self.procs[pdir.name].wait()
            if proc:
                cluster_procs.forget(self.dir, proc)
            if self.stopping.is_set():
                return
            log.warning("%s exited with %s; restarting in %.0fs", pdir.name, code,
                        RESTART_DELAY_S)
            await asyncio.sleep(RESTART_DELAY_S)

    async def _reload_roster(self, broker: EmbeddedBroker | None) -> None:
        """SIGHUP: the embedded broker and every node take the roster file's next version."""
        if broker is not None:
            self.roster = await revise_broker(broker, self.dir, self.roster)
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGHUP)

    def _save(self) -> None:
        RunState(os.getpid(), self.broker_url,
                 {n: p.pid for n, p in self.procs.items()}).save(self.dir)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        dirs = party_dirs(self.dir)
        cluster_procs.record(self.dir, "supervisor", os.getpid())
        broker = None
        if self.external_broker:
            self.broker_url = self.external_broker
        else:
            broker = embedded_broker(self.dir)
            self.broker_url = broker.url
            await broker.start()
            log.info("embedded broker listening on %s", self.broker_url)
        loop.add_signal_handler(signal.SIGHUP,
                                lambda: asyncio.ensure_future(self._reload_roster(broker)))
        watchers = [asyncio.ensure_future(self._watch(d)) for d in dirs]
        await self.stopping.wait()
        log.info("stopping %d nodes", len(self.procs))
        for proc in self.procs.values():
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        waits = [asyncio.wait_for(p.wait(), STOP_GRACE_S) for p in self.procs.values()]
        for proc, result in zip(self.procs.values(),
                                await asyncio.gather(*waits, return_exceptions=True)):
            if isinstance(result, asyncio.TimeoutError):
                proc.kill()
                await proc.wait()
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        if broker:
            await broker.stop()
        RunState.path(self.dir).unlink(missing_ok=True)
        for proc in cluster_procs.recorded(self.dir):
            if proc.pid == os.getpid():
                cluster_procs.forget(self.dir, proc)


def embedded_broker(cluster_dir: Path) -> EmbeddedBroker:
    """The broker the cluster's node configs point at, with the cluster's broker cert."""
    url = load_node_config(party_dirs(cluster_dir)[0] / "node.yaml").broker
    tls, host, port = parse_broker_url(url)
    bdir = Path(cluster_dir) / "broker"
    if not tls:
        return EmbeddedBroker(host, port)
    roster = load_roster(Path(cluster_dir) / "roster.yaml")
    peers = bdir / "peers.pem"  # clients log in only with a certificate the roster pins
    peers.write_text(roster.peer_certs_pem)
    return EmbeddedBroker(host, port, bdir / "broker.crt", bdir / "broker.key", peers,
                          roster_acl(roster))


def roster_acl(roster: Roster) -> dict:
    """Who the broker admits, and as what."""
    return {"cluster": roster.cluster_id, "parties": [p.name for p in roster.parties],
            "coordinators": [c.name for c in roster.coordinators]}


async def revise_broker(broker: EmbeddedBroker, cluster_dir: Path, held: Roster) -> Roster:
    """SIGHUP: the broker takes the roster file's next version (checked as a node checks
    it) at once, closing and refusing the clients it no longer lists; the roster it runs
    with afterwards.  A version that adds someone needs a restart (TLS pins the
    certificates the broker started with)."""
    try:
        offered = load_roster(Path(cluster_dir) / "roster.yaml")
        governance.accept(held, offered)
        added = set(governance.operators(offered).items()) - set(governance.operators(held).items())
        if added:
            raise ConfigError(f"version {offered.version} adds or re-keys"
                              f" {', '.join(sorted(n for n, _ in added))}: restart the broker")
    except (ConfigError, governance.RosterTrustError) as exc:
        log.error("broker keeps roster version %d: %s", held.version, exc)
        return held
    closed = await broker.revise(roster_acl(offered))
    log.info("broker runs with roster version %d now; closed %s", offered.version,
             ", ".join(closed) or "nobody")
    return offered


def run_broker(cluster_dir: Path) -> None:
    """Run the cluster's embedded broker alone until SIGTERM/SIGINT."""
    async def main():
        broker = embedded_broker(cluster_dir)
        await broker.start()
        print(f"broker listening on {broker.url}", flush=True)
        stop, reload = asyncio.Event(), asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload.set)
        held = load_roster(Path(cluster_dir) / "roster.yaml")
        while not stop.is_set():
            waits = [asyncio.ensure_future(e.wait()) for e in (stop, reload)]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
            if reload.is_set():
                reload.clear()
                held = await revise_broker(broker, cluster_dir, held)
        await broker.stop()
    asyncio.run(main())


def run_supervisor(cluster_dir: Path, broker: str | None) -> None:
    asyncio.run(Supervisor(cluster_dir, broker).run())

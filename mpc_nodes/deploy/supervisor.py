"""`cluster supervise`: the process behind `cluster up`.  It runs the embedded broker in-process
(unless an external broker is given), one node process per party, restarts a node that dies,
and on SIGTERM stops the nodes (SIGTERM, then SIGKILL after a grace period) and the broker.
Each node is recorded in run/procs/ and dies with the supervisor (cluster_procs).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from mpc_nodes.deploy import cluster_procs
from mpc_nodes.wire.broker import EmbeddedBroker
from mpc_nodes.deploy.cluster import RunState, node_command, party_dirs
from mpc_nodes.config import load_node_config, load_roster, parse_broker_url

log = logging.getLogger("mpcnet.supervisor")
STOP_GRACE_S = 10.0
RESTART_DELAY_S = 1.0


class Supervisor:
    def __init__(self, cluster_dir: Path, broker: str | None):
        self.dir = Path(cluster_dir).resolve()
        self.external_broker = broker
        self.procs: dict[str, asyncio.subprocess.Process] = {}
        self.stopping = asyncio.Event()

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
    acl = {"cluster": roster.cluster_id, "parties": [p.name for p in roster.parties],
           "coordinators": [c.name for c in roster.coordinators]}
    peers = bdir / "peers.pem"  # clients log in only with a certificate the roster pins
    peers.write_text(roster.peer_certs_pem)
    return EmbeddedBroker(host, port, bdir / "broker.crt", bdir / "broker.key", peers, acl)


def run_broker(cluster_dir: Path) -> None:
    """Run the cluster's embedded broker alone until SIGTERM/SIGINT."""
    async def main():
        broker = embedded_broker(cluster_dir)
        await broker.start()
        print(f"broker listening on {broker.url}", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
        await broker.stop()
    asyncio.run(main())


def run_supervisor(cluster_dir: Path, broker: str | None) -> None:
    asyncio.run(Supervisor(cluster_dir, broker).run())

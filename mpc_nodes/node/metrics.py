"""Prometheus metrics and a health endpoint for one node, on a local HTTP port.

GET /metrics  Prometheus text format
GET /healthz  200 when the node is connected to the broker and hears from it (its own
              heartbeat comes back) and its data directory has room, 503 otherwise; the
              JSON body says which
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger("mpcnet.metrics")


class NodeMetrics:
    """The node's counters, gauges and histograms, in a registry of its own."""

    def __init__(self, party: str):
        self.registry = CollectorRegistry()
        labels = {"registry": self.registry}
        self.jobs = Counter("mpcnet_jobs_total", "Jobs this node took part in, by kind and"
                            " outcome (ok, failed).", ["kind", "outcome"], **labels)
        self.votes = Counter("mpcnet_votes_total", "Votes cast, by kind and decision.",
                             ["kind", "decision"], **labels)
        self.policy_rejections = Counter("mpcnet_policy_rejections_total", "Requests this node"
                                         " refused, by kind.", ["kind"], **labels)
        self.rejected_messages = Counter("mpcnet_rejected_messages_total", "Bus messages dropped"
                                         " as invalid, forged or unexpected.", **labels)
        self.session_seconds = Histogram("mpcnet_mpc_session_seconds", "MPC session duration"
                                         " (set-up and protocol).", ["kind"], **labels,
                                         buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5,
                                                  10, 30, 60, 120))
        self.bus_connects = Counter("mpcnet_bus_connections_total", "Successful broker"
                                    " connections (reconnects = this minus one).", **labels)
        self.bus_connected = Gauge("mpcnet_bus_connected", "1 while connected to the broker.",
                                   **labels)
        self.bus_deaf = Gauge("mpcnet_bus_deaf", "1 while connected but the node's own"
                              " heartbeat does not come back (lost subscriptions).", **labels)
        self.engine_restarts = Counter("mpcnet_engine_restarts_total", "MPC engine processes"
                                       " replaced after a failed or hung session.", **labels)
        self.presignatures_left = Gauge("mpcnet_presignatures_left", "Unused presignatures this"
                                        " node process holds, by key (in memory only: none"
                                        " after a restart).", ["key_id"], **labels)
        self.frost_nonces_left = Gauge("mpcnet_frost_nonces_left", "Unused FROST nonces this"
                                       " node process holds, by key: preprocessed ones and"
                                       " round ones not yet signed with (in memory only)",
                                       ["key_id"], **labels)
        self.data_dir_free_bytes = Gauge("mpcnet_data_dir_free_bytes", "Free space in the"
                                         " node's data directory (below min_free_mib the node"
                                         " refuses jobs).", **labels)
        self.write_failures = Counter("mpcnet_durable_write_failures_total", "Writes of"
                                      " durable state (audit log, replay guard, policy state,"
                                      " key shares) that failed, e.g. on a full disk; the"
                                      " operation failed and the previous state is intact.",
                                      **labels)
        self.info = Gauge("mpcnet_node_info", "Constant 1, labelled with the node's identity.",
                          ["party", "version", "code_digest"], **labels)
        self.party = party

    def render(self) -> bytes:
        return generate_latest(self.registry)


class HealthServer:
    """A tiny HTTP/1.1 server for /metrics and /healthz (GET only, one request per connection)."""

    def __init__(self, metrics: NodeMetrics, health: Callable[[], dict], host: str, port: int):
        self.metrics, self.health, self.host, self.port = metrics, health, host, port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        log.info("metrics and health on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass  # headers are not needed
            parts = line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            if len(parts) < 2 or parts[0] != "GET":
                status, ctype, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
            elif path == "/metrics":
                status, ctype, body = "200 OK", CONTENT_TYPE_LATEST, self.metrics.render()
            elif path in ("/healthz", "/health"):
                report = self.health()
                status = "200 OK" if report["healthy"] else "503 Service Unavailable"
                ctype, body = "application/json", json.dumps(report).encode() + b"\n"
            else:
                status, ctype, body = "404 Not Found", "text/plain", b"try /metrics or /healthz\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length:"
                         f" {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

"""MPyC sessions over mutual TLS, run by the node's MPC engine in real child processes."""

import asyncio
import os
from pathlib import Path
import signal
import statistics

import pytest

from mpc_nodes import pki
from mpc_nodes.node.engine import MpcEngine
from mpc_nodes.node.session import SessionError, SessionPeer, SessionRun, SessionSpec
from protocols.aggregate import aggregate
from protocols.diagnostics import rounds
from tests.cluster_harness import wait_until
from tests.mpc_harness import free_ports

pytestmark = pytest.mark.heavy  # every test runs MPC engines: child processes on TLS links

PASS = b"test-passphrase"


@pytest.fixture
def tls(tmp_path):
    """A cluster CA and certificates for party0..party3 (plus an outsider from another CA)."""
    ca_key, ca_cert = pki.new_ca("testcluster")
    files = {}
    for i in range(4):
        key, cert = pki.issue_cert(ca_key, ca_cert, f"party{i}", [f"party{i}"], ["127.0.0.1"],
                                   server=True, client=True)
        pki.write_key(tmp_path / f"p{i}.key", key, PASS)
        (tmp_path / f"p{i}.crt").write_text(pki.cert_pem(cert))
        files[i] = (str(tmp_path / f"p{i}.crt"), str(tmp_path / f"p{i}.key"))
    return pki.cert_pem(ca_cert), files


def specs(tls, values, session_id="ab" * 32, ports=None, protocol=aggregate,
          args=None, **kw):
    ca_pem, files = tls
    ports = ports or free_ports(len(values))
    peers = [SessionPeer(f"party{i}", "127.0.0.1", ports[i], Path(files[i][0]).read_text())
             for i in range(len(values))]
    return [SessionSpec(session_id=session_id, my_pid=i, peers=peers, bind_host="127.0.0.1",
                        bind_port=ports[i],
                        tls_cert=files[i][0], tls_key=files[i][1], tls_passphrase=PASS,
                        ca_pem=ca_pem, protocol=protocol, args=args or [v, "median"], **kw)
            for i, v in enumerate(values)]


async def run_all(engines, session_specs):
    """Run one session on each engine; each party's output, or the exception it raised."""
    results = await asyncio.gather(*(e.run(s) for e, s in zip(engines, session_specs)),
                                   return_exceptions=True)
    return [r.output if isinstance(r, SessionRun) else r for r in results]


@pytest.mark.timeout(60)
async def test_three_party_median_over_tls_and_engine_reuse(tls):
    engines = [MpcEngine() for _ in range(3)]
    try:
        ports, warm = free_ports(3), []
        for values in ([0.5, 0.9, 0.7], [1.25, 0.25, 2.0], [3.0, 1.0, 2.0]):
            runs = await asyncio.gather(*(e.run(s) for e, s in zip(
                engines, specs(tls, values, session_id=os.urandom(32).hex(), ports=ports))))
            assert [r.output for r in runs] == \
                [pytest.approx(statistics.median(values), abs=1e-8)] * 3
            warm.append([r.warm_links for r in runs])
        assert all(e.restarts == 0 for e in engines)
        # the first session dials every link (party0 two, party1 one); the next ones open
        # theirs on the same connections, each with its own session id
        assert warm == [[0, 0, 0], [2, 1, 0], [2, 1, 0]]
    finally:
        await asyncio.gather(*(e.close() for e in engines))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("warm", [False, True])
async def test_mismatched_session_ids_never_connect(tls, warm):
    """Also on a link kept warm from a session both ran: each session opens it with its id."""
    engines = [MpcEngine() for _ in range(2)]
    try:
        ports = free_ports(2)
        if warm:
            assert await run_all(engines, specs(tls, [1.0, 2.0], ports=ports)) == \
                [pytest.approx(1.5, abs=1e-8)] * 2
        a, b = specs(tls, [1.0, 2.0], session_id="ef" * 32, ports=ports, connect_timeout=2.0)
        b = SessionSpec(**{**b.__dict__, "session_id": "cd" * 32})
        results = await run_all(engines, [a, b])
        assert all(isinstance(r, SessionError) for r in results), results
        assert "party1" in str(results[0])
        assert "could not connect to party0" in str(results[1])
    finally:
        await asyncio.gather(*(e.close() for e in engines))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("warm", [False, True])
async def test_certificate_not_in_roster_is_refused_even_from_the_cluster_ca(tls, tmp_path, warm):
    """A second certificate for party0's name from the same CA (e.g. issued by whoever holds
    the CA key) is refused: sessions pin each party's roster certificate.  Also when the
    link is warm from a session under the earlier pin (a roster change replaced party0's
    certificate): the pin is checked on every reuse, not only at the handshake."""
    ca_pem, files = tls
    engines = [MpcEngine() for _ in range(2)]
    try:
        ports = free_ports(2)
        if warm:
            assert await run_all(engines, specs(tls, [1.0, 2.0], ports=ports)) == \
                [pytest.approx(1.5, abs=1e-8)] * 2
        s = specs(tls, [1.0, 2.0], session_id="cd" * 32, ports=ports, connect_timeout=2.0)
        s[1] = SessionSpec(**{**s[1].__dict__, "peers": [
            SessionPeer("party0", "127.0.0.1", s[0].peers[0].port, Path(files[3][0]).read_text()),
            s[1].peers[1]]})
        results = await run_all(engines, s)
        assert all(isinstance(r, SessionError) for r in results), results
    finally:
        await asyncio.gather(*(e.close() for e in engines))


@pytest.mark.timeout(60)
async def test_certificate_of_wrong_party_is_refused(tls):
    """party1's key is used for session index 2: the listener must reject it."""
    ca_pem, files = tls
    engines = [MpcEngine() for _ in range(3)]
    try:
        s = specs(tls, [1.0, 2.0, 3.0], connect_timeout=2.0)
        s[0] = SessionSpec(**{**s[0].__dict__, "tls_cert": files[3][0], "tls_key": files[3][1]})
        results = await run_all(engines, s)
        assert all(isinstance(r, SessionError) for r in results), results
    finally:
        await asyncio.gather(*(e.close() for e in engines))


@pytest.mark.timeout(60)
async def test_killed_party_fails_session_on_others_quickly(tls, capfd, monkeypatch):
    monkeypatch.setenv("MPCNET_LOG_LEVEL", "INFO")  # the engines log each connected session
    engines = [MpcEngine() for _ in range(3)]
    try:
        s = specs(tls, [0, 0, 0], protocol=rounds, args=[100_000],
                  session_timeout=30.0)
        tasks = [asyncio.ensure_future(e.run(x)) for e, x in zip(engines, s)]
        logged = []

        def in_session():  # every engine logged its connected session: exchanging rounds
            logged.append(capfd.readouterr().err)
            return "".join(logged).count(": connected to ") == 3
        await wait_until(in_session, 30, "every party connected the session")
        assert not any(t.done() for t in tasks)
        os.kill(engines[2]._proc.pid, signal.SIGKILL)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, SessionError) for r in results), results
        # detected as a lost connection, not waited out (the session may run 30 s)
        assert not any("did not finish" in str(r) or "hung" in str(r) for r in results), results
        # party0 and party1 fail at once; at least one blames party2, the other may blame
        # the survivor that dropped out first
        assert any("lost connection to party2" in str(r) for r in results[:2]), results
        # the engines recover and the next session works
        values = [0.3, 0.1, 0.2]
        assert await run_all(engines, specs(tls, values)) == [pytest.approx(0.2, abs=1e-8)] * 3
    finally:
        await asyncio.gather(*(e.close() for e in engines))


@pytest.mark.timeout(60)
async def test_silent_party_times_out(tls):
    """A party that never dials in makes the session fail with the connect timeout, naming it."""
    engines = [MpcEngine() for _ in range(2)]
    try:
        s = specs(tls, [1.0, 2.0, 3.0], connect_timeout=1.5)
        results = await run_all(engines, s[:2])
        assert all(isinstance(r, SessionError) for r in results), results
        for r in results:  # whoever gives up first, both name the party that never came
            assert "party2" in str(r), r
    finally:
        await asyncio.gather(*(e.close() for e in engines))


@pytest.mark.timeout(60)
async def test_abort_while_the_engine_starts_stops_the_session_before_it_begins(tls):
    """An abort that arrives while the child is still starting is not lost: the session
    never begins, and the engine serves the next one."""
    engines = [MpcEngine() for _ in range(3)]
    try:
        first = asyncio.ensure_future(engines[0].run(specs(tls, [1.0, 2.0, 3.0])[0]))
        await asyncio.sleep(0)  # in run(), waiting for the child
        assert engines[0].abort("operator")
        with pytest.raises(SessionError, match="aborted: operator"):
            await first
        values = [0.3, 0.1, 0.2]
        assert await run_all(engines, specs(tls, values)) == [pytest.approx(0.2, abs=1e-8)] * 3
    finally:
        await asyncio.gather(*(e.close() for e in engines))


async def test_a_link_lost_while_ending_the_session_ends_the_wait_at_once():
    """A peer that dies between its last protocol message and its END must not hold the
    survivors until the session deadline: the lost link fails SessionLinks.finish now."""
    from types import SimpleNamespace

    from protocols.mpyc_seam import PeerLink
    unset = []
    rt = SimpleNamespace(pid=0, unset_protocol=unset.append)
    policy = SimpleNamespace(closing=True, accept=lambda transport, pid: True)
    link = PeerLink(rt, policy, peer_pid=1)
    link.connection_lost(None)
    with pytest.raises(ConnectionError, match="before the peer's END"):
        await asyncio.wait_for(link.ended, 1.0)
    assert unset == [1]

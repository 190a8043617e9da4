"""A full disk never damages durable state (issue 11, item 3).

Unit tests put files on a small tmpfs that is really full (root only: skipped otherwise); the
end-to-end test puts one party's data directory there, fills it, and checks that the node
stays up, says so in /healthz, its metrics and its votes, damages nothing, and takes jobs
again once there is room.
"""

import asyncio
import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from keyshare.atomic import write_atomic
from mpc_nodes.node.audit import AuditLog, AuditWriteError, verify_cluster, verify_log
from mpc_nodes.cli.app import main as cli
from mpc_nodes.deploy.cluster import free_port, init_cluster
from tests.cluster_harness import http_get, wait_until


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str = "2m"):
    """Mount a tmpfs of `size` at `path` (skip when we may not); always unmount."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def full_fs(tmp_path):
    with small_tmpfs(tmp_path / "fs", "1m") as path:
        yield path


def fill(directory: Path) -> Path:
    """Write a filler file until the filesystem refuses even one more byte."""
    filler = directory / "filler"
    with open(filler, "ab", buffering=0) as f:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def make_log(path: Path, n: int = 3) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append("result", job_id=f"job{i}", ok=True, output_digest=f"d{i}")
    return log


# -- the audit log --------------------------------------------------------------------------

def test_torn_final_line_is_recovered_and_flagged(tmp_path):
    path = tmp_path / "audit.log"
    make_log(path)
    torn = b'{"event":"request","hash":"ab'  # an append a crash or a full disk cut short
    with open(path, "ab") as f:
        f.write(torn)

    before = verify_log(path)
    assert before.ok and before.entries == 3 and before.torn == torn
    assert "torn final line" in before.warnings[0]

    log = AuditLog(path)  # the node starts: no refusal
    assert (tmp_path / "audit.log.torn-3").read_bytes() == torn
    log.append("request", job_id="next")
    report = verify_log(path)
    assert report.ok and report.entries == 5 and not report.torn
    flagged = report.events[3]
    assert flagged["event"] == "torn_tail" and flagged["bytes"] == len(torn)
    assert flagged["sha256"] == hashlib.sha256(torn).hexdigest()
    assert report.events[4]["job_id"] == "next"
    assert len(report.warnings) == 1 and "recovered, kept in audit.log.torn-3" in \
        report.warnings[0]
    AuditLog(path)  # opening again records nothing new
    assert verify_log(path).entries == 5

    (tmp_path / "audit.log.torn-3").unlink()  # the kept bytes are part of the evidence
    assert "missing or changed" in verify_log(path).warnings[0]


def test_torn_tail_moved_aside_but_not_recorded_is_recorded_at_start(tmp_path):
    """A crash after the torn bytes were moved aside and cut off, before the event."""
    path = tmp_path / "audit.log"
    make_log(path)
    (tmp_path / "audit.log.torn-3").write_bytes(b'{"seq":3')
    AuditLog(path)
    report = verify_log(path)
    assert report.ok and [e["event"] for e in report.events][-1] == "torn_tail"


def test_torn_line_in_the_middle_is_refused(tmp_path):
    """Bytes of an interrupted append that a later append continued: that line is damaged
    in the middle of the chain, which only tampering (or the old bug) produces."""
    path = tmp_path / "audit.log"
    make_log(path)
    with open(path, "ab") as f:
        f.write(b'{"seq":3,"ev')
    good = tmp_path / "other.log"
    make_log(good, 5)
    with open(path, "ab") as f:
        f.write(good.read_bytes().splitlines(keepends=True)[3])
        f.write(good.read_bytes().splitlines(keepends=True)[4])
    report = verify_log(path)
    assert not report.ok and report.bad_line == 4 and "corrupt or truncated" in report.reason
    with pytest.raises(ValueError, match="damaged at line 4"):
        AuditLog(path)


def test_failed_append_on_a_full_disk_leaves_the_log_valid(full_fs):
    path = full_fs / "audit.log"
    log = make_log(path)
    before = path.read_bytes()
    filler = fill(full_fs)
    # larger than a page: part of it fits into the log's last page, the rest does not
    with pytest.raises(AuditWriteError, match="No space left on device"):
        log.append("request", job_id="big", note="x" * 20_000)
    assert path.read_bytes() == before  # no partial line for the next append to continue
    with pytest.raises(AuditWriteError):
        log.append("request", job_id="big again", note="y" * 20_000)
    filler.unlink()
    log.append("request", job_id="after", note="z" * 20_000)
    report = verify_log(path)
    assert report.ok and report.entries == 4 and not report.warnings
    assert report.events[3]["job_id"] == "after"
    AuditLog(path)  # and the node would start


def test_torn_tail_on_a_full_disk_waits_for_room(full_fs):
    """Found at start while the disk is full: the node starts, appends fail (the torn bytes
    cannot be moved aside yet), and the first append after space returns recovers it."""
    path = full_fs / "audit.log"
    make_log(path)
    with open(path, "ab") as f:
        f.write(b'{"seq":3,"ts":17')
    before = path.read_bytes()
    filler = fill(full_fs)
    log = AuditLog(path)
    with pytest.raises(AuditWriteError, match="torn final line"):
        log.append("request", job_id="j", note="x" * 20_000)
    assert path.read_bytes() == before
    filler.unlink()
    log.append("request", job_id="j")
    report = verify_log(path)
    assert report.ok and [e["event"] for e in report.events][3:] == ["torn_tail", "request"]


def test_cli_audit_verify_warns_about_a_recovered_torn_tail(tmp_path):
    cluster = tmp_path / "cluster"
    init_cluster(cluster, 3, 1)
    logs = {i: cluster / f"party{i}" / "data" / "audit.log" for i in range(3)}
    for path in logs.values():
        make_log(path)
    with open(logs[1], "ab") as f:
        f.write(b'{"seq":3')
    AuditLog(logs[1])
    done = CliRunner().invoke(cli, ["audit", "verify", "--dir", str(cluster), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["ok"] and report["logs"]["party1"]["ok"]
    assert "torn final line" in report["logs"]["party1"]["warnings"][0]
    assert report["logs"]["party0"]["warnings"] == []
    done = CliRunner().invoke(cli, ["audit", "verify", "--dir", str(cluster)])
    assert done.exit_code == 0 and "warning" in done.output and "TAMPERED" not in done.output


# -- whole files ----------------------------------------------------------------------------

def test_write_atomic_on_a_full_disk_keeps_the_previous_file(full_fs):
    path = full_fs / "COMMITTED"
    write_atomic(path, b"old")
    filler = fill(full_fs)
    with pytest.raises(OSError) as exc:
        write_atomic(path, b"new" * 50_000)
    assert exc.value.errno == errno.ENOSPC
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in full_fs.iterdir()) == ["COMMITTED", "filler"]  # no temp
    filler.unlink()
    write_atomic(path, b"new" * 50_000)
    assert path.read_bytes() == b"new" * 50_000


# -- a node on a full disk ------------------------------------------------------------------


def free_bytes_metric(port: int) -> float:
    _, text = http_get(port, "/metrics")
    found = [x for x in text.splitlines() if x.startswith("mpcnet_data_dir_free_bytes ")]
    assert found, text
    return float(found[0].split()[1])


def vote_of(outcome, party: str):
    votes = {v.party: v for v in outcome.votes}
    assert party in votes, f"no vote from {party} (dropped silently): {outcome.error}"
    return votes[party]


async def restart(cluster, c, i: int) -> None:
    """Stop party i, start it again, and wait until it is connected and online."""
    cluster.stop_node(i)
    starts = cluster.log(i).count("(connection 1)")
    cluster.start_node(i)

    def connected():
        assert cluster.nodes[i].poll() is None, cluster.log(i)[-3000:]
        return cluster.log(i).count("(connection 1)") > starts
    await wait_until(connected, 60, f"party{i} connected again")
    await cluster.wait_online(c)


def check_durable_state(cluster, data: Path) -> None:
    """Nothing the node keeps on disk is damaged: chains verify, the replay guard opens."""
    logs = {f"party{i}": cluster.dir / f"party{i}" / "data" / "audit.log" for i in (1, 2)}
    reports, disagreements = verify_cluster({"party0": data / "audit.log", **logs})
    assert all(r.ok and not r.warnings for r in reports.values()), reports
    assert not disagreements
    db = sqlite3.connect(f"file:{data / 'seen_jobs.sqlite'}?mode=ro", uri=True)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT count(*) FROM seen").fetchone()[0] >= 2
    finally:
        db.close()


@pytest.mark.e2e
@pytest.mark.timeout(180)
async def test_a_node_on_a_full_disk_refuses_with_the_reason_and_recovers(make_cluster,
                                                                         tmp_path):
    with small_tmpfs(tmp_path / "party0-data", "4m") as data:
        cluster = make_cluster(parties=3, threshold=1, start=False)
        port = free_port()
        cluster.configure_node(0, data_dir=str(data), metrics_port=port, min_free_mib=1)
        cluster.start()
        async with cluster.coordinator() as c:
            await cluster.wait_online(c)
            made = await c.run_job("keygen", {"key_id": "vault-1"})
            assert made.ok, made.error
            assert (await asyncio.to_thread(http_get, port, "/healthz"))[0] == 200

            filler, filled = fill(data), time.monotonic()
            status, body = await asyncio.to_thread(http_get, port, "/healthz")
            assert status == 503, body
            assert json.loads(body)["disk"].startswith("low disk: ")
            assert free_bytes_metric(port) < 1 << 20
            for kind, params in (("aggregate", {"input": "eth_vol_30d"}),
                                 ("presign", {"key_id": "vault-1", "count": 1})):
                refused = await c.run_job(kind, params)
                assert not refused.ok
                assert {v.party for v in refused.votes} == {"party0", "party1", "party2"}
                vote = vote_of(refused, "party0")  # a vote, not silence
                assert not vote.accept and vote.reason.startswith("low disk: ")
                assert "MiB free in data dir" in vote.reason
                if kind == "aggregate":
                    refused_s = time.monotonic() - filled
            assert cluster.nodes[0].poll() is None  # the node stays up

            # a restart on the full disk: it starts, and still says why it refuses
            await restart(cluster, c, 0)
            again = await c.run_job("aggregate", {"input": "eth_vol_30d"})
            assert vote_of(again, "party0").reason.startswith("low disk: ")

            # without the free-space check, the write that fails still ends in a vote
            cluster.configure_node(0, min_free_mib=0)
            await restart(cluster, c, 0)
            failed = await c.run_job("aggregate", {"input": "eth_vol_30d"})
            vote = vote_of(failed, "party0")
            assert not vote.accept and "disk is full" in vote.reason, vote
            assert cluster.nodes[0].poll() is None

            filler.unlink()
            freed = time.monotonic()
            status, body = await asyncio.to_thread(http_get, port, "/healthz")
            assert status == 200 and json.loads(body)["disk"] == "ok", body
            agg = await c.run_job("aggregate", {"input": "eth_vol_30d"})
            assert agg.ok and agg.participants == ["party0", "party1", "party2"], agg.error
            print(f"\nfull disk: refused with the reason {refused_s:.2f} s after filling;"
                  f" a job succeeded {time.monotonic() - freed:.2f} s after freeing space")
            pre = await c.run_job("presign", {"key_id": "vault-1", "count": 1})
            assert pre.ok, pre.error  # party0's key share still opens
        check_durable_state(cluster, data)
        cluster.close()  # before the tmpfs goes

"""keyshare.atomic.write_atomic, the one durable write of state files: the data is synced
before the rename and the directory after it, a failed write leaves the old file, the mode
holds from the first byte; and the state files of a local cluster are written with it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from keyshare.atomic import write_atomic
from mpc_nodes.deploy import cluster_procs
from mpc_nodes.deploy.cluster import RunState


@pytest.fixture
def disk_calls(monkeypatch):
    """Every fsync (by the path of the synced file or directory) and rename, in order."""
    calls = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd):
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def recording_replace(src, dst):
        calls.append(("replace", str(src), str(dst)))
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    return calls


def assert_durable(calls: list, path: Path) -> None:
    """The temp file beside `path` was synced, renamed onto it, then the directory synced."""
    path = path.resolve()
    assert [c[0] for c in calls] == ["fsync", "replace", "fsync"], calls
    (_, synced), (_, src, dst), (_, directory) = calls
    assert synced == src and Path(src).parent == path.parent and dst == str(path)
    assert directory == str(path.parent)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_atomic_syncs_renames_and_syncs_the_directory(tmp_path, disk_calls):
    path = tmp_path / "new" / "state.json"
    write_atomic(path, b"one")
    assert path.read_bytes() == b"one" and mode(path) == 0o600 and mode(path.parent) == 0o700
    assert_durable(disk_calls, path)
    disk_calls.clear()
    write_atomic(path, b"two", mode=0o644)
    assert path.read_bytes() == b"two" and mode(path) == 0o644
    assert_durable(disk_calls, path)


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    write_atomic(path, b"old")

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old" and sorted(tmp_path.iterdir()) == [path]


def test_a_clusters_run_state_is_written_durably(tmp_path, disk_calls):
    state = RunState(supervisor_pid=os.getpid(), broker="mqtts://127.0.0.1:1", nodes={"p0": 1})
    state.save(tmp_path)
    assert RunState.load(tmp_path) == state and mode(RunState.path(tmp_path)) == 0o600
    assert_durable(disk_calls, RunState.path(tmp_path))


def test_a_clusters_process_records_are_written_durably(tmp_path, disk_calls):
    proc = cluster_procs.record(tmp_path, "supervisor", os.getpid())
    assert cluster_procs.recorded(tmp_path) == [proc]
    assert_durable(disk_calls, tmp_path / "run" / "procs" / "supervisor.json")

"""Every process of a local cluster (`cluster up`), recorded so that none is lost.

run/procs/<name>.json holds one process's pid and kernel start time, written atomically when
it starts: `cluster down` stops every recorded process that still runs, even after the
supervisor died, and `cluster up` refuses to start beside live ones.  The start time tells a
recorded process from a later one that reuses its pid.  Nodes also die with their supervisor
(PR_SET_PDEATHSIG), so a killed supervisor normally leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from keyshare.atomic import write_atomic

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Proc:
    name: str  # "supervisor" or a party name
    pid: int
    start: int  # /proc/<pid>/stat starttime, clock ticks since boot

    def __str__(self) -> str:
        return f"{self.name} (pid {self.pid})"


def _procs_dir(cluster_dir: Path) -> Path:
    return Path(cluster_dir) / "run" / "procs"


def _stat(pid: int) -> tuple[str, int] | None:
    """A process's state letter and kernel start time, or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return fields[0], int(fields[19])


def start_time(pid: int) -> int | None:
    """The kernel's start time of a running (not zombie) process, or None if there is none."""
    stat = _stat(pid)
    return None if stat is None or stat[0] in "ZX" else stat[1]


def record(cluster_dir: Path, name: str, pid: int) -> Proc | None:
    """Record process `pid` as `name` of this cluster (None if it has already gone)."""
    start = start_time(pid)
    if start is None:
        return None
    proc = Proc(name, pid, start)
    write_atomic(_procs_dir(cluster_dir) / f"{name}.json",
                 json.dumps({"pid": pid, "start": start}).encode())
    return proc


def forget(cluster_dir: Path, proc: Proc) -> None:
    """Drop `proc`'s record, unless it records another process by now."""
    path = _procs_dir(cluster_dir) / f"{proc.name}.json"
    if _load(path) == proc:
        path.unlink(missing_ok=True)


def _load(path: Path) -> Proc | None:
    try:
        data = json.loads(path.read_text())
        return Proc(path.stem, int(data["pid"]), int(data["start"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def recorded(cluster_dir: Path) -> list[Proc]:
    d = _procs_dir(cluster_dir)
    return [p for path in sorted(d.glob("*.json")) if (p := _load(path))] if d.exists() else []


def alive(proc: Proc) -> bool:
    """Whether the recorded process itself still runs (a reused pid does not count)."""
    try:  # a zombie child of this process is reaped here and counts as gone
        os.waitpid(proc.pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return start_time(proc.pid) == proc.start


def _reaped(proc: Proc) -> bool:
    alive(proc)  # reaps it if it is our child
    stat = _stat(proc.pid)
    return stat is None or stat[1] != proc.start


def live(cluster_dir: Path) -> list[Proc]:
    """The recorded processes that still run; records of the others are removed."""
    running = []
    for proc in recorded(cluster_dir):
        if alive(proc):
            running.append(proc)
        else:
            forget(cluster_dir, proc)
    return running


def _signal(proc: Proc, sig: int) -> None:
    if alive(proc):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass


def _wait(procs: list[Proc], timeout: float) -> list[Proc]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in procs if alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def stop_all(cluster_dir: Path, grace: float = 20.0) -> list[Proc]:
    """Stop every live process of the cluster: the supervisor first (it stops its nodes),
    then any left, SIGTERM then SIGKILL after `grace`.  Returns the ones that were running."""
    running = live(cluster_dir)
    supervisor = [p for p in running if p.name == "supervisor"]
    for proc in supervisor:
        _signal(proc, signal.SIGTERM)
        _signal(proc, signal.SIGCONT)  # a stopped process acts on SIGTERM only when resumed
    _wait(supervisor, grace)
    for proc in [p for p in running if p not in supervisor]:
        _signal(proc, signal.SIGTERM)
        _signal(proc, signal.SIGCONT)
    left = _wait(running, grace)
    for proc in left:
        _signal(proc, signal.SIGKILL)
    _wait(left, 5.0)
    deadline = time.monotonic() + 5.0  # and reaped, so that its pid is free when we return
    while [p for p in running if not _reaped(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    for proc in running:
        forget(cluster_dir, proc)
    return running


def die_with_parent(parent: int):
    """A preexec_fn: the child gets SIGTERM when its parent dies, and exits at once if the
    parent is already gone (it died between fork and this call)."""
    def set_up() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)
    return set_up

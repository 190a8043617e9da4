"""Every module of mpc_nodes, protocols and keyshare imports first, in a fresh process,
without error: no import cycle, and no module that works only once another of ours was
imported before it.

One fresh interpreter (the "zygote") learns which third-party and standard modules our
packages use, in a child that imports them all, and loads those; it then forks one child per
module of ours, which imports that module before any other of ours.  Each module thus gets a
process of its own in which none of our modules was imported, at the cost of a fork rather
than of an interpreter start plus eth-account, pydantic and numpy each time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mpc_nodes", "protocols", "keyshare")

ZYGOTE = r"""
import importlib, json, os, sys, traceback

ours, modules = tuple(json.loads(sys.argv[1])), json.loads(sys.argv[2])


def is_ours(name):
    return name.split(".")[0] in ours


def fork(work):
    # run work() in a forked child, which writes what it returns (or its traceback) to a
    # pipe, at most 60,000 bytes: less than a pipe holds, so it never blocks before exiting
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            text = work()
        except BaseException:
            text = traceback.format_exc()
        os.write(write, text.encode()[-60_000:])
        os._exit(0)
    os.close(write)
    return pid, read


def written(read):
    with os.fdopen(read, "rb") as pipe:
        return pipe.read().decode()


def in_child(work):
    pid, read = fork(work)
    os.waitpid(pid, 0)
    return written(read)


def everything_but_ours():
    for name in modules:
        try:  # one that fails here fails again, alone, below
            importlib.import_module(name)
        except BaseException:
            pass
    return json.dumps(sorted(m for m in sys.modules if not is_ours(m)))


for name in json.loads(in_child(everything_but_ours)):
    try:  # a head start only: whatever fails here, the module of ours imports it itself
        importlib.import_module(name)
    except BaseException:
        pass
assert not any(is_ours(m) for m in sys.modules), "the zygote imported a module of ours"


def first(name):
    def work():
        importlib.import_module(name)
        return ""
    return work


results, running, waiting = {}, {}, list(modules)
while waiting or running:  # as many children at a time as there are cores
    while waiting and len(running) < (os.cpu_count() or 1):
        name = waiting.pop()
        pid, read = fork(first(name))
        running[pid] = name, read
    pid, _ = os.wait()
    name, read = running.pop(pid)
    results[name] = written(read)
print(json.dumps(results))
"""


def our_modules() -> list[str]:
    """Every module of our packages, by its file (nothing is imported to find them)."""
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.mark.heavy
def test_every_module_imports_first_in_a_fresh_process():
    modules = our_modules()
    assert {"mpc_nodes.node.daemon", "mpc_nodes.jobs.frost", "protocols.pricing",
            "keyshare.store"} <= set(modules)
    run = subprocess.run([sys.executable, "-c", ZYGOTE, json.dumps(PACKAGES),
                          json.dumps(modules)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    errors = json.loads(run.stdout.splitlines()[-1])
    assert sorted(errors) == sorted(modules)
    failed = {name: error for name, error in errors.items() if error}
    assert not failed, "\n".join(f"{name} does not import first:\n{error}"
                                 for name, error in failed.items())


NOT_AT_START = ("eth_account", "eth_abi", "eth_keys", "eth_utils", "mpyc")


def test_starting_a_node_or_a_client_does_not_load_the_ethereum_libraries_or_mpyc():
    """The Ethereum libraries take over half a second to import and most jobs never use them:
    the modules that do import them on first use (mpc_nodes.jobs.evm, calldata, keycheck,
    marks, chain.eip712).  MPyC configures logging when imported: it is loaded where a
    session runs (docs/ARCHITECTURE.md)."""
    for module in ("mpc_nodes.node.daemon", "mpc_nodes.client.api"):
        run = subprocess.run([sys.executable, "-c", f"import sys, {module}; print(' '.join("
                              f"sorted({{m.split('.')[0] for m in sys.modules}})))"],
                             cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-4000:]
        loaded = set(run.stdout.split()) & set(NOT_AT_START)
        assert not loaded, (f"import {module} loads {', '.join(sorted(loaded))}; find the importer"
                            f" with: python -X importtime -c 'import {module}'")

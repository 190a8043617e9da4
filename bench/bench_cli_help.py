"""The time of `mpcnet --help` against a bare `python -c pass`: what the CLI's start-up costs
(the command group imports no command, nor eth-account, numpy or MPyC; see
mpc_nodes/cli/app.py).  Best of N runs each, and their ratio.

    python bench/bench_cli_help.py [--runs 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def best_of(command: list[str], runs: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    bare = best_of([sys.executable, "-c", "pass"], runs)
    help_ = best_of([sys.executable, "-m", "mpc_nodes.cli.app", "--help"], runs)
    print(f"python -c pass   {1000 * bare:7.1f} ms")
    print(f"mpcnet --help    {1000 * help_:7.1f} ms   ({help_ / bare:.1f}x a bare interpreter,"
          f" best of {runs})")


if __name__ == "__main__":
    main()

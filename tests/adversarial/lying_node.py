"""TEST-ONLY entry point: a real mpcnet node whose outgoing bus messages pass through a hook.

    python -m tests.adversarial.lying_node --config party1/node.yaml --broker URL \
        --hook /tmp/hook.py

The hook file defines `lie(leaf, message, node)`; it is called with every message the node
is about to sign ("votes", "results", "status") and returns the message to send instead
(or the same one).  The node's code, and so its code digest, are unchanged: only what it
says on the bus is a lie, exactly as an operator who patched its own node could make it.
Nothing in the production modules knows about this.

With ``--engine-worker MODULE`` its MPC engine runs that module instead of the real worker
(e.g. tests.adversarial.deviating_engine: the node deviates inside its MPC sessions); without
``--hook`` its bus messages are its own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import runpy
import sys

from mpc_nodes.node.daemon import Node
from mpc_nodes.node.engine import MpcEngine


class LyingNode(Node):
    """A node that lets `lie` rewrite each message before it is signed."""

    def __init__(self, config_path, broker, lie, engine_worker: str = MpcEngine.WORKER):
        self._lie = lie  # before Node.__init__, which already seals its Last Will
        super().__init__(config_path, broker)
        self.engine = MpcEngine(on_restart=self.metrics.engine_restarts.inc,
                                worker=engine_worker)

    def _seal(self, leaf, message):
        return super()._seal(leaf, self._lie(leaf, message, self))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--broker")
    ap.add_argument("--hook", help="a .py file that defines lie(leaf, msg, node)")
    ap.add_argument("--engine-worker", default=MpcEngine.WORKER,
                    help="the MPC engine's child module")
    args = ap.parse_args(argv)
    logging.basicConfig(level="INFO", stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    lie = runpy.run_path(args.hook)["lie"] if args.hook else lambda leaf, message, node: message

    async def run():
        await LyingNode(args.config, args.broker, lie, args.engine_worker).run()
    asyncio.run(run())


if __name__ == "__main__":
    main()

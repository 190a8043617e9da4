"""TEST-ONLY entry point: a real mpcnet node whose outgoing bus messages pass through a hook.

    python -m tests.adversarial.lying_node --config party1/node.yaml --broker URL \
        --hook /tmp/hook.py

The hook file defines `lie(leaf, message, node)`; it is called with every message the node
is about to sign ("votes", "results", "status") and returns the message to send instead
(or the same one).  The node's code, and so its code digest, are unchanged: only what it
says on the bus is a lie, exactly as an operator who patched its own node could make it.
Nothing in the production modules knows about this.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import runpy
import sys

from mpc_nodes.node.daemon import Node


class LyingNode(Node):
    """A node that lets `lie` rewrite each message before it is signed."""

    def __init__(self, config_path, broker, lie):
        self._lie = lie  # before Node.__init__, which already seals its Last Will
        super().__init__(config_path, broker)

    def _seal(self, leaf, message):
        return super()._seal(leaf, self._lie(leaf, message, self))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--broker")
    ap.add_argument("--hook", required=True, help="a .py file that defines lie(leaf, msg, node)")
    args = ap.parse_args(argv)
    logging.basicConfig(level="INFO", stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    lie = runpy.run_path(args.hook)["lie"]

    async def run():
        await LyingNode(args.config, args.broker, lie).run()
    asyncio.run(run())


if __name__ == "__main__":
    main()

"""One party of tests.mpc_harness.run_parties: argv[1] names a JSON spec file; prints a JSON
result."""

import asyncio
import importlib
import json
import sys


async def main(spec):
    from mpc_nodes.node.mpyc_runtime import PartyAddress, new_runtime

    addresses = [PartyAddress("127.0.0.1", p) for p in spec["ports"]]
    rt = new_runtime(spec["pid"], addresses, spec.get("threshold"))
    module_name, func_name = spec["target"].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    await rt.start()
    result = await func(rt, *spec["args"])
    await rt.shutdown()
    return result


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    print(json.dumps(asyncio.run(main(spec))))

"""A JSON-RPC endpoint of an EVM node, for what submitting a signed transaction needs:
eth_chainId, eth_getTransactionCount and eth_sendRawTransaction, over HTTP(S) with urllib.

An `Endpoint` is anything with these three operations; `mpc_nodes.chain.evm_local.LocalChain`
is one too, so the demo and the tests submit to an in-process chain the same way.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Protocol

from mpc_nodes.errors import UserError

TIMEOUT_S = 30.0


class RpcError(UserError):
    """The endpoint could not be reached, or refused the request (its message is quoted)."""


class Endpoint(Protocol):
    @property
    def chain_id(self) -> int: ...

    def transaction_count(self, address: str) -> int:
        """The next nonce of `address` (pending transactions counted)."""

    def send_raw_transaction(self, raw: bytes) -> str:
        """Submit a signed transaction; its hash, 0x hex."""


class JsonRpc:
    """An EVM node's JSON-RPC endpoint at `url` (http or https)."""

    def __init__(self, url: str):
        if not url.startswith(("http://", "https://")):
            raise RpcError(f"RPC endpoint {url!r} is not an http:// or https:// URL")
        self.url, self._id = url, 0

    def _call(self, method: str, params: list):
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method,
                           "params": params}).encode()
        request = urllib.request.Request(self.url, body,
                                         {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                reply = json.loads(response.read())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RpcError(f"{method} at {self.url}: {exc}") from None
        if not isinstance(reply, dict) or ("error" in reply) == ("result" in reply):
            raise RpcError(f"{method} at {self.url}: not a JSON-RPC reply")
        if "error" in reply:
            error = reply["error"]
            raise RpcError(f"{method} at {self.url} refused: "
                           f"{error.get('message', error) if isinstance(error, dict) else error}")
        return reply["result"]

    def _quantity(self, method: str, params: list) -> int:
        result = self._call(method, params)
        try:
            return int(result, 16)
        except (TypeError, ValueError):
            raise RpcError(f"{method} at {self.url}: {result!r} is not a hex quantity") from None

    @property
    def chain_id(self) -> int:
        return self._quantity("eth_chainId", [])

    def transaction_count(self, address: str) -> int:
        return self._quantity("eth_getTransactionCount", [address, "pending"])

    def send_raw_transaction(self, raw: bytes) -> str:
        return self._call("eth_sendRawTransaction", ["0x" + raw.hex()])

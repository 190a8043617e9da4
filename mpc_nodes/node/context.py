"""What a job kind may use on a node: its config, roster identity, files, key store, input
bindings and in-memory one-time secrets."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from keyshare import KeyStore, OneTimeSecrets

from mpc_nodes.config import NodeConfig, PartyInfo, Roster, resolve
from mpc_nodes.node.input_usage import InputReused, InputUsage, InputUse

PRESIGNATURE_LIFETIME_S = 24 * 3600.0
PREPROCESSED_NONCE_LIFETIME_S = 24 * 3600.0
"""FROST nonces made ahead of time (frost-preprocess) live as long as presignatures; those of
a two-round signing only as long as a request."""
MAX_PRESIGNATURES = MAX_NONCES = 10_000
"""Bounds of a node's in-memory one-time secrets (see keyshare.onetime)."""


class JobRejected(Exception):
    """This node will not take part in the job; the message is the reason it votes with."""


class ApprovesOnly(Exception):
    """This node approves the job but cannot take part in it (e.g. a signature by a key it
    holds no share of, which its policy allows): it votes ACCEPT as an approval only, with
    the message as its reason, and is never a participant."""


@dataclass
class NodeContext:
    """What a job kind may use on a node: its config, roster identity, files and key store."""

    roster: Roster
    party: PartyInfo
    config: NodeConfig
    config_path: Path
    share_passphrase: bytes

    def path(self, p: str) -> Path:
        return resolve(self.config_path, p)

    @functools.cached_property
    def keystore(self) -> KeyStore:
        return KeyStore(self.path(self.config.data_dir) / "keys", self.share_passphrase,
                        self.roster.cluster_id, self.party.index, party_name=self.party.name)

    @functools.cached_property
    def input_usage(self) -> InputUsage:
        """Which participant set and aggregation each private input version is bound to."""
        return InputUsage(self.path(self.config.data_dir) / "input_usage.sqlite")

    def bind_inputs(self, uses: list[InputUse],
                    participants: list[PartyInfo] | None = None) -> None:
        """Refuse (JobRejected) a use of private inputs that could combine with an earlier
        job's; with the participants (right before the session), also bind them durably."""
        try:
            if participants is None:
                self.input_usage.check(uses)
            else:
                self.input_usage.claim(uses, [p.name for p in participants])
        except InputReused as exc:
            raise JobRejected(str(exc)) from None

    @functools.cached_property
    def presignatures(self) -> OneTimeSecrets:
        """This node process's ECDSA presignatures: in memory only, gone when it stops."""
        return OneTimeSecrets("presignature", PRESIGNATURE_LIFETIME_S, MAX_PRESIGNATURES)

    @functools.cached_property
    def nonces(self) -> OneTimeSecrets:
        """This node process's FROST nonces: in memory only, living no longer than a request."""
        return OneTimeSecrets("nonce", self.roster.limits.max_request_ttl_s, MAX_NONCES)

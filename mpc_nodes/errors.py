"""The errors mpcnet raises on purpose, in one hierarchy; any other exception is a bug.

    MpcnetError
    ├── UserError        the caller or operator must change something: exit status 2
    │   ├── UsageError   bad input: a parameter, an option, a file's content
    │   ├── ConfigError, KeyFileError, ClusterError, CoordinatorError, BusUnavailable
    ├── JobFailed        the network refused or failed a job: `outcome` says why, per party;
    │                    exit status 1 (FrostSigningError is one)
    └── InvalidReport    a signed price report does not verify: exit status 1

The subclasses that live with their subject (ConfigError in mpc_nodes.config, ...) keep
their older bases too (ValueError, RuntimeError, ConnectionError), so code that caught
those still does.  This module imports nothing: every layer may use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mpc_nodes.client.coordinator import JobOutcome


class MpcnetError(Exception):
    """Base of every error mpcnet raises on purpose."""


class UserError(MpcnetError):
    """Something the caller or operator must change (input, configuration, files, a broker
    that is not running); the message says what."""


class UsageError(UserError, ValueError):
    """Bad input: a parameter, option or file content; the message names it."""


class JobFailed(MpcnetError):
    """A job was refused or failed.  `outcome` is the JobOutcome (votes, each participant's
    error, timings); `reasons` names each party that refused or failed, with its reason."""

    def __init__(self, outcome: JobOutcome, message: str | None = None):
        super().__init__(message or outcome.error or "the job failed")
        self.outcome = outcome

    @property
    def reasons(self) -> dict[str, str]:
        """Party -> why it refused (its vote) or failed (its result), in roster order of
        the votes, then the participants' errors."""
        refused = {v.party: v.reason for v in self.outcome.votes if not v.accept}
        return refused | self.outcome.party_errors


class InvalidReport(MpcnetError):
    """A signed price report does not verify; the message says which check failed."""

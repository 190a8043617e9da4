"""The coordinator's side of mpcnet, and its public Python API:

    from mpc_nodes.client import Client, JobFailed, UsageError

The names below are imported on first use, so that importing a module of this package (the
ledger, say) does not import the whole client.
"""

from importlib import import_module

_PUBLIC = {
    "Client": "mpc_nodes.client.api", "verify_report": "mpc_nodes.client.api",
    "JobOutcome": "mpc_nodes.client.coordinator", "OptionBook": "mpc_nodes.jobs.options_csv",
    "FrostSigningError": "mpc_nodes.jobs.frost",
    "MpcnetError": "mpc_nodes.errors", "UserError": "mpc_nodes.errors",
    "UsageError": "mpc_nodes.errors", "JobFailed": "mpc_nodes.errors",
    "InvalidReport": "mpc_nodes.errors",
    **{name: "mpc_nodes.client.results" for name in (
        "NetworkStatus", "PartyStatus", "Aggregate", "Ping", "Key", "SignedTransaction",
        "FrostSignature", "Presignatures", "Refreshed", "Priced", "OptionResult",
        "SignedReport", "VerifiedReport", "KeyStatus", "Repair", "PresignaturePool")},
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)

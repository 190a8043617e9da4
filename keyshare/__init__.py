"""Key share storage: encrypted at rest, crash-safe, epochs for refresh; one-time secrets
in memory only."""

from .backup import export_backup, import_backup
from .errors import (ForeignShare, KeyShareError, PresignatureUnavailable, RekeyUnfinished,
                     TamperedFile, UnknownKey, UnsupportedVersion, WrongPassphrase)
from .onetime import OneTimeSecrets
from .store import KeyMeta, KeyStore

__all__ = ["KeyStore", "KeyMeta", "OneTimeSecrets", "export_backup", "import_backup",
           "KeyShareError", "WrongPassphrase", "TamperedFile", "ForeignShare", "UnknownKey",
           "UnsupportedVersion", "PresignatureUnavailable", "RekeyUnfinished"]

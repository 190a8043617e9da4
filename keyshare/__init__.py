"""Key share storage: encrypted at rest, crash-safe, epochs for refresh, one-time secrets."""

from .backup import export_backup, import_backup
from .errors import (ForeignShare, KeyShareError, PresignatureUnavailable, TamperedFile,
                     UnknownKey, UnsupportedVersion, WrongPassphrase)
from .store import KeyMeta, KeyStore

__all__ = ["KeyStore", "KeyMeta", "export_backup", "import_backup", "KeyShareError",
           "WrongPassphrase", "TamperedFile", "ForeignShare", "UnknownKey",
           "UnsupportedVersion", "PresignatureUnavailable"]

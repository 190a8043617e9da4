"""Errors of the key share store: each names the file and what is wrong with it."""


class KeyShareError(Exception):
    """Base class: a key share could not be stored or loaded."""


class WrongPassphrase(KeyShareError):
    """The passphrase does not open this store or file."""


class RekeyUnfinished(KeyShareError):
    """A change of the store's passphrase was interrupted; it must be run again."""


class TamperedFile(KeyShareError):
    """A share file is malformed, truncated, or was modified."""


class ForeignShare(KeyShareError):
    """The share belongs to another cluster, party or key."""


class UnknownKey(KeyShareError):
    """No such key (or epoch) in this store."""


class UnsupportedVersion(KeyShareError):
    """The file was written by an incompatible version."""


class PresignatureUnavailable(KeyShareError):
    """No unused presignature (or one-time secret) matches the request."""

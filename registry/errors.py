"""Every error the registry raises; the CLI turns them into one-line messages."""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: a registry operation was refused; nothing on disk changed."""


# Marker bases the CLI maps to exit codes (cli/errors.py). Not-found errors are
# LookupErrors, bad input ValueErrors, network ConnectionErrors; these two have
# no standard type of their own.
class ConflictError(RegistryError):
    """The request contradicts what is stored (a taken name, a version in use)."""


class GateError(RegistryError):
    """A quality, parity or accuracy gate refused the result."""


class FailedVersionError(GateError):
    """Pointing an alias at a version that failed its quality gate, without force."""


class HomeError(RegistryError):
    """The registry home cannot be used as a folder (it is a file, or cannot be created)."""


class CorruptIndexError(RegistryError):
    """`registry.db` is not an SQLite database loradock can read; nothing was changed."""


class InvalidNameError(RegistryError, ValueError):
    """A domain, alias or file name that is unsafe or malformed."""


class InvalidTextError(RegistryError, ValueError):
    """Text that cannot be stored (not valid UTF-8); nothing was written."""


class InvalidRefError(RegistryError, ValueError):
    """A `DOMAIN@REF` string that does not parse."""


class UnknownDomainError(RegistryError, KeyError):
    def __init__(self, domain: str, known: list[str]) -> None:
        self.domain = domain
        self.known = known
        hint = ", ".join(known) if known else "none yet"
        super().__init__(
            f"Unknown domain {domain!r} (known: {hint}). Add it with: adapters domains add {domain} --labels a,b"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownVersionError(RegistryError, KeyError):
    def __init__(self, ref: str, hint: str) -> None:
        self.ref = ref
        super().__init__(f"No version {ref!r}. {hint}")

    def __str__(self) -> str:
        return str(self.args[0])


class DomainExistsError(ConflictError):
    """`domains add` for a name that is taken."""


class DomainInUseError(ConflictError):
    """Removing a domain, or changing its labels, while versions exist."""


class InvalidAdapterError(RegistryError, ValueError):
    """A PEFT folder that fails validation; it was not stored."""


class TaskMismatchError(InvalidAdapterError):
    """An adapter trained for one task (PEFT task_type) offered to a domain of another; nothing was stored."""


class UnsafeFileError(InvalidAdapterError):
    """A file to read or store that is a symbolic link or a special file (FIFO, device); nothing was stored."""


class AliasError(RegistryError):
    """An alias operation that would leave the registry inconsistent."""


class VersionInUseError(ConflictError):
    """Removing a version an alias still points to."""


class CorruptBlobError(RegistryError):
    """Stored bytes no longer match their sha256; they are never served."""

    def __init__(self, sha256: str, path: str, detail: str, where: str = "") -> None:
        self.sha256 = sha256
        self.path = path  # for logs and `verify`; never in the message, which reaches API clients
        of = f" of {where}" if where else ""
        super().__init__(
            f"Blob {sha256[:12]}{of} is {detail}. "
            "Run 'adapters verify' to list damage, then re-register or pull the version again."
        )


class ArtifactError(RegistryError):
    """An artifact that cannot be stored or found."""

"""loradock's registry: versioned LoRA adapters per domain, content-addressed files,
an SQLite index. Knows nothing of torch."""

from .domains import DEFAULT_BASE, PRESETS, Domain, LoraRecipe
from .errors import (
    AliasError,
    ArtifactError,
    CorruptBlobError,
    DomainExistsError,
    InvalidAdapterError,
    InvalidNameError,
    InvalidRefError,
    RegistryError,
    UnknownDomainError,
    UnknownVersionError,
    UnsafeFileError,
    VersionInUseError,
)
from .names import LATEST, Ref, parse_ref
from .records import AdapterVersion, Artifact, Event, VersionInfo
from .store import Registry, content_hash

__all__ = [
    "DEFAULT_BASE", "LATEST", "PRESETS", "AdapterVersion", "AliasError", "Artifact", "ArtifactError",
    "CorruptBlobError", "Domain", "DomainExistsError", "Event", "InvalidAdapterError", "InvalidNameError",
    "InvalidRefError", "LoraRecipe", "Ref", "Registry", "RegistryError", "UnknownDomainError",
    "UnknownVersionError", "UnsafeFileError", "VersionInUseError", "VersionInfo", "content_hash", "parse_ref",
]

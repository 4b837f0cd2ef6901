"""loradock's registry: versioned LoRA adapters per domain, content-addressed files,
an SQLite index. Knows nothing of torch."""

from .blobs import sha256_file
from .domains import (
    CLASSIFICATION,
    DEFAULT_BASE,
    DEFAULT_GENERATION_BASE,
    GENERATION,
    PRESETS,
    TASKS,
    Domain,
    LoraRecipe,
    task_name,
)
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
from .names import LATEST, Ref, check_alias, check_name, parse_ref
from .peft_files import LABEL_CONFIG, MAX_WEIGHTS_BYTES, validate_folder
from .records import AdapterVersion, Artifact, Event, VersionInfo
from .regular_files import is_regular
from .store import ADAPTER_FILES, Registry, check_relpath, content_hash

__all__ = [
    "ADAPTER_FILES",
    "CLASSIFICATION",
    "DEFAULT_BASE",
    "DEFAULT_GENERATION_BASE",
    "GENERATION",
    "LABEL_CONFIG",
    "LATEST",
    "MAX_WEIGHTS_BYTES",
    "PRESETS",
    "TASKS",
    "AdapterVersion",
    "AliasError",
    "Artifact",
    "ArtifactError",
    "CorruptBlobError",
    "Domain",
    "DomainExistsError",
    "Event",
    "InvalidAdapterError",
    "InvalidNameError",
    "InvalidRefError",
    "LoraRecipe",
    "Ref",
    "Registry",
    "RegistryError",
    "UnknownDomainError",
    "UnknownVersionError",
    "UnsafeFileError",
    "VersionInUseError",
    "VersionInfo",
    "check_alias",
    "check_name",
    "check_relpath",
    "content_hash",
    "is_regular",
    "parse_ref",
    "sha256_file",
    "task_name",
    "validate_folder",
]

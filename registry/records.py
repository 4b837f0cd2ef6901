"""What the registry hands out: immutable records of versions, artifacts and events."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

_JSON_FIELDS = (
    "files",
    "labels",
    "peft_config",
    "data",
    "metrics",
    "train_args",
    "tags",
    "provenance",
    "extra",
    "gate",
)


@dataclass(frozen=True)
class VersionInfo:
    """Metadata a caller supplies when registering; everything else is derived."""

    base_model: str | None = None
    base_revision: str | None = None
    base_fingerprint: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    train_args: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    description: str = ""
    tags: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    # The quality-gate result (registry/gates.py check()); empty: registered unchecked.
    gate: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AdapterVersion:
    """One immutable version `domain@number`, identified inside by `sha256`."""

    id: int
    domain: str
    number: int
    kind: str
    sha256: str
    files: dict[str, dict[str, Any]]
    size_bytes: int
    base_model: str | None
    base_revision: str | None
    base_fingerprint: str | None
    task: str
    labels: list[str]
    peft_config: dict[str, Any]
    data: dict[str, Any]
    metrics: dict[str, Any]
    train_args: dict[str, Any]
    parent: str | None
    description: str
    tags: list[str]
    provenance: dict[str, Any]
    extra: dict[str, Any]
    created_at: str
    gate: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    # Not stored: True when `register` found these exact files already registered
    # and returned that version instead of making a new one.
    reused: bool = False

    @property
    def ref(self) -> str:
        return f"{self.domain}@{self.number}"

    @property
    def failed(self) -> bool:
        """True when the version failed its quality gate; aliases and `latest` skip it."""
        return self.gate.get("passed") is False

    @classmethod
    def from_row(cls, row: dict[str, Any], aliases: tuple[str, ...] = ()) -> AdapterVersion:
        values = {k: row[k] for k in cls.__dataclass_fields__ if k in row and k not in ("aliases", "reused")}
        for key in _JSON_FIELDS:
            values[key] = json.loads(values[key]) if values.get(key) else ({} if key not in ("labels", "tags") else [])
        values["description"] = values.get("description") or ""
        return cls(**values, aliases=aliases)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ref"] = self.ref
        data["aliases"] = list(self.aliases)
        return data


@dataclass(frozen=True)
class Artifact:
    """Files hung off a version: plots, reports, merged models, ONNX exports."""

    id: int
    version_id: int | None
    domain: str
    kind: str
    name: str
    files: dict[str, dict[str, Any]]
    meta: dict[str, Any]
    created_at: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Artifact:
        return cls(
            id=row["id"],
            version_id=row["version_id"],
            domain=row["domain"],
            kind=row["kind"],
            name=row["name"],
            files=json.loads(row["files"]),
            meta=json.loads(row["meta"] or "{}"),
            created_at=row["created_at"],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Event:
    """One change in the log: what, when, old and new value."""

    id: int
    at: str
    action: str
    domain: str | None
    name: str | None
    old: str | None
    new: str | None
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        return cls(
            id=row["id"],
            at=row["at"],
            action=row["action"],
            domain=row["domain"],
            name=row["name"],
            old=row["old"],
            new=row["new"],
            detail=json.loads(row["detail"] or "{}"),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

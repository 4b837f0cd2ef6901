"""The index schema, as append-only sqlite-utils migrations. Never edit a shipped one."""

from __future__ import annotations

from sqlite_utils import Database, Migrations

migrations = Migrations("loradock.registry")


@migrations()
def m001_initial(db: Database) -> None:
    db.table("domains").create(
        {
            "name": str,
            "task": str,
            "labels": str,
            "base_model": str,
            "base_revision": str,
            "dataset": str,
            "description": str,
            "recipe": str,
            "preset": int,
            "created_at": str,
        },
        pk="name",
    )
    db.table("versions").create(
        {
            "id": int,
            "domain": str,
            "number": int,
            "kind": str,
            "sha256": str,
            "files": str,
            "size_bytes": int,
            "base_model": str,
            "base_revision": str,
            "base_fingerprint": str,
            "task": str,
            "labels": str,
            "peft_config": str,
            "data": str,
            "metrics": str,
            "train_args": str,
            "parent": str,
            "description": str,
            "tags": str,
            "provenance": str,
            "extra": str,
            "created_at": str,
            "removed_at": str,
        },
        pk="id",
        foreign_keys=[("domain", "domains", "name")],
        not_null={"domain", "number", "sha256", "files", "created_at"},
    )
    db.table("versions").create_index(["domain", "number"], unique=True)
    db.table("versions").create_index(["sha256"])
    db.table("aliases").create(
        {"domain": str, "name": str, "number": int, "updated_at": str},
        pk=("domain", "name"),
        foreign_keys=[("domain", "domains", "name")],
    )
    db.table("artifacts").create(
        {
            "id": int,
            "version_id": int,
            "domain": str,
            "kind": str,
            "name": str,
            "files": str,
            "meta": str,
            "created_at": str,
        },
        pk="id",
        foreign_keys=[("version_id", "versions", "id")],
    )
    db.table("artifacts").create_index(["version_id", "kind", "name"], unique=True)
    db.table("events").create(
        {
            "id": int,
            "at": str,
            "action": str,
            "domain": str,
            "name": str,
            "old": str,
            "new": str,
            "detail": str,
        },
        pk="id",
    )
    db.table("events").create_index(["domain", "name"])


@migrations()
def m002_quality_gates(db: Database) -> None:
    # versions.gate: the JSON gate result (passed, reasons, baseline, thresholds);
    # gate_passed: 1/0, NULL for versions registered without a check (they count
    # as good), so `latest` can skip failed versions in SQL.
    db.table("versions").add_column("gate", str)
    db.table("versions").add_column("gate_passed", int)
    # domains.gate: the domain's QualityGate thresholds, JSON.
    db.table("domains").add_column("gate", str)

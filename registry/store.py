"""The Registry: the only code that touches the index tables."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from . import db as dbmod
from .adapter_config import CONFIG
from .blobs import BlobStore, fsync_dir, sha256_file
from .domains import PRESETS, Domain
from .errors import (
    AliasError,
    ArtifactError,
    CorruptBlobError,
    DomainExistsError,
    DomainInUseError,
    FailedVersionError,
    InvalidNameError,
    UnknownDomainError,
    UnknownVersionError,
    VersionInUseError,
)
from .home import default_home, make_home
from .names import LATEST, MAX_NUMBER, Ref, check_alias, check_name, parse_ref
from .peft_files import LABEL_CONFIG, WEIGHTS, AdapterSummary, validate_folder
from .records import AdapterVersion, Artifact, Event, VersionInfo
from .regular_files import is_regular

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger(__name__)

ADAPTER_FILES = (CONFIG, WEIGHTS)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def content_hash(files: Mapping[str, Mapping[str, Any]]) -> str:
    """The identity of a set of files: sha256 over their sorted names and hashes."""
    listing = "".join(f"{name}\0{files[name]['sha256']}\n" for name in sorted(files))
    return hashlib.sha256(listing.encode()).hexdigest()


# Partial writes and unused copies younger than this may belong to a process still at work.
GRACE_S = 3600.0


def _size(path: Path) -> int:
    if path.is_symlink() or not path.is_dir():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir() or p.is_symlink())


def _remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def check_relpath(name: str) -> str:
    """A stored file name: relative, no `..`, no empty parts, no backslashes; else InvalidNameError."""
    if not isinstance(name, str):
        raise InvalidNameError(f"Invalid file name {name!r}: use a relative path without '..'.")
    return _check_relpath(name)


def _check_relpath(name: str) -> str:
    path = PurePosixPath(name)
    if (
        not name
        or path.is_absolute()
        or any(part in ("..", ".", "") for part in name.split("/"))
        or "\\" in name
        or any(ord(c) < 32 for c in name)
        or len(name) > 255
    ):
        raise InvalidNameError(f"Invalid file name {name!r}: use a relative path without '..'.")
    return str(path)


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    problems: list[dict[str, Any]]
    # Debris, not damage (`ok` ignores it): partial writes of killed processes and
    # copies of removed versions, older than GRACE_S. `adapters gc` removes them.
    leftovers: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class GcReport:
    removed: list[str]
    freed_bytes: int
    dry_run: bool
    leftovers: list[str] = dataclasses.field(default_factory=list)  # paths of stale copies and partial writes


class Registry:
    """A versioned store of LoRA adapters per domain, rooted at one home directory."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        make_home(self.home)
        self.blobs = BlobStore(self.home / "blobs")
        self.conn = dbmod.connect(self.home / "registry.db")
        self._db: Database | None = None
        self._lock = threading.RLock()

    @property
    def db(self) -> Database:
        """sqlite-utils over the same connection; made on the first write."""
        if self._db is None:
            self._db = dbmod.wrap(self.conn)
        return self._db

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries -------------------------------------------------------------

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return dbmod.query(self.conn, sql, list(params))

    def _log(self, action: str, domain: str | None, name: str | None, old: Any, new: Any, **detail: Any) -> None:
        self.db.table("events").insert(
            {
                "at": _now(),
                "action": action,
                "domain": domain,
                "name": name,
                "old": None if old is None else str(old),
                "new": None if new is None else str(new),
                "detail": _dumps(detail),
            }
        )

    # -- domains -------------------------------------------------------------

    def domain(self, name: str) -> Domain:
        """A domain by name; presets are usable before anything is registered."""
        check_name(name, "domain")
        rows = self._rows("select * from domains where name = ?", [name])
        if rows:
            return Domain.from_row(rows[0])
        if name in PRESETS:
            return PRESETS[name]
        raise UnknownDomainError(name, self.domain_names())

    def domain_names(self) -> list[str]:
        stored = {r["name"] for r in self._rows("select name from domains")}
        return sorted(stored | set(PRESETS))

    def domains(self) -> list[Domain]:
        return [self.domain(n) for n in self.domain_names()]

    def add_domain(self, domain: Domain) -> Domain:
        """Define a user domain; a name that is taken (presets included) is refused."""
        with self._lock, dbmod.write(self.db):
            if domain.name in PRESETS or self._rows("select 1 from domains where name = ?", [domain.name]):
                raise DomainExistsError(
                    f"Domain {domain.name!r} already exists. See it with: adapters domains show {domain.name}"
                )
            self._insert_domain(domain)
        return domain

    def _insert_domain(self, domain: Domain) -> None:
        row = domain.to_row()
        row["labels"] = _dumps(row["labels"])
        row["recipe"] = _dumps(row["recipe"])
        row["gate"] = _dumps(row["gate"])
        self.db.table("domains").insert({**row, "created_at": _now()})
        self._log("domain.add", domain.name, None, None, domain.name, labels=list(domain.labels))

    def update_domain(self, name: str, **changes: Any) -> Domain:
        """Change a domain's description, labels, base_model, dataset, recipe or gate.

        Labels are refused while live versions exist: their heads were trained on the old ones.
        """
        allowed = {"description", "labels", "base_model", "base_revision", "dataset", "recipe", "gate"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise InvalidNameError(
                f"Cannot change {', '.join(unknown)} of a domain; changeable: {', '.join(sorted(allowed))}."
            )
        with self._lock, dbmod.write(self.db):
            current = self._ensure_domain_row(name)
            if "labels" in changes and tuple(changes["labels"]) != current.labels:
                live = self._rows("select count(*) as n from versions where domain = ? and removed_at is null", [name])[
                    0
                ]["n"]
                if live:
                    raise DomainInUseError(
                        f"Domain {name!r} has {live} version(s) trained on labels {', '.join(current.labels)}; "
                        f"its labels cannot change. Add a new domain (adapters domains add NEW --labels ...) "
                        f"or remove the versions first (adapters domains rm {name} --force)."
                    )
            changes = {k: tuple(v) if k == "labels" else v for k, v in changes.items()}
            updated = dataclasses.replace(current, **changes)  # validates like a new Domain
            row = updated.to_row()
            for key in ("labels", "recipe", "gate"):
                row[key] = _dumps(row[key])
            self.db.table("domains").update(name, row)
            self._log("domain.edit", name, None, None, None, changed=sorted(changes))
        return updated

    def remove_domain(self, name: str, *, force: bool = False) -> int:
        """Delete a domain with its aliases, versions and artifacts in one transaction.

        Refused while live versions exist unless `force`; returns how many versions
        went. Blobs stay until `gc`. A preset's name stays usable as the plain preset.
        """
        check_name(name, "domain")
        with self._lock, dbmod.write(self.db):
            self.domain(name)  # unknown: its own error
            live = self._rows("select count(*) as n from versions where domain = ? and removed_at is null", [name])[0][
                "n"
            ]
            if live and not force:
                raise DomainInUseError(
                    f"Domain {name!r} has {live} version(s); nothing was removed. Remove them with it: "
                    f"adapters domains rm {name} --force"
                )
            for table in ("artifacts", "aliases", "versions"):
                self.db.execute(f"delete from {table} where domain = ?", [name])
            self.db.execute("delete from domains where name = ?", [name])
            self._log("domain.rm", name, None, name, None, versions=live)
        return int(live)

    def _ensure_domain_row(self, name: str) -> Domain:
        """Inside a write: make sure a preset domain has its row before a version refers to it."""
        rows = self._rows("select * from domains where name = ?", [name])
        if rows:
            return Domain.from_row(rows[0])
        if name not in PRESETS:
            raise UnknownDomainError(name, self.domain_names())
        self._insert_domain(PRESETS[name])
        return PRESETS[name]

    # -- versions ------------------------------------------------------------

    def _aliases_of(self, domain: str) -> dict[int, tuple[str, ...]]:
        out: dict[int, list[str]] = {}
        for row in self._rows("select name, number from aliases where domain = ? order by name", [domain]):
            out.setdefault(row["number"], []).append(row["name"])
        latest = self._latest_number(domain)
        if latest is not None:
            out.setdefault(latest, []).insert(0, LATEST)
        return {k: tuple(v) for k, v in out.items()}

    def _latest_number(self, domain: str) -> int | None:
        # `latest` is the newest version that did not fail its quality gate (contract 4):
        # a server following it never moves to a failed one.
        rows = self._rows(
            "select max(number) as n from versions where domain = ? and removed_at is null "
            "and (gate_passed is null or gate_passed != 0)",
            [domain],
        )
        return rows[0]["n"] if rows else None

    def _version_row(self, ref: Ref) -> dict[str, Any]:
        self.domain(ref.domain)  # unknown domain is its own, clearer error
        number = ref.number
        if number is None:
            if ref.alias == LATEST:
                number = self._latest_number(ref.domain)
                failed = (
                    self._rows(
                        "select max(number) as n from versions where domain = ? and removed_at is null", [ref.domain]
                    )[0]["n"]
                    if number is None
                    else None
                )
                if failed is not None:
                    raise UnknownVersionError(
                        str(ref),
                        f"Every version of {ref.domain!r} failed its quality gate (newest: {ref.domain}@{failed}); "
                        f"see why with: adapters show {ref.domain}@{failed}. Name it explicitly, or train again.",
                    )
                if number is None:
                    raise UnknownVersionError(
                        str(ref),
                        f"Domain {ref.domain!r} has no versions yet: run 'adapters train {ref.domain}' or 'adapters register {ref.domain} PATH'.",
                    )
            else:
                rows = self._rows("select number from aliases where domain = ? and name = ?", [ref.domain, ref.alias])
                if not rows:
                    known = [r["name"] for r in self._rows("select name from aliases where domain = ?", [ref.domain])]
                    raise UnknownVersionError(
                        str(ref),
                        f"No alias {ref.alias!r} in {ref.domain!r} (aliases: {', '.join([LATEST, *known])}). "
                        f"Set one with: adapters alias set {ref.domain} {ref.alias} N",
                    )
                number = rows[0]["number"]
        rows = self._rows(
            "select * from versions where domain = ? and number = ? and removed_at is null", [ref.domain, number]
        )
        if not rows:
            raise UnknownVersionError(f"{ref.domain}@{number}", f"See what exists with: adapters list {ref.domain}")
        return rows[0]

    def resolve(self, ref: str | Ref) -> AdapterVersion:
        """The version a `DOMAIN@REF` names right now."""
        parsed = parse_ref(ref) if isinstance(ref, str) else ref
        row = self._version_row(parsed)
        return AdapterVersion.from_row(row, self._aliases_of(parsed.domain).get(row["number"], ()))

    def versions(self, domain: str | None = None, limit: int | None = None) -> list[AdapterVersion]:
        """Live versions, newest first, of one domain or of all."""
        sql = "select * from versions where removed_at is null"
        params: list[Any] = []
        if domain is not None:
            self.domain(domain)
            sql += " and domain = ?"
            params.append(domain)
        # Newest first; `id` order lets SQLite walk the primary key instead of sorting.
        sql += " order by id desc" if domain is None else " order by number desc"
        if limit is not None:
            sql += " limit ?"
            params.append(min(limit, MAX_NUMBER))  # SQLite integers stop at 2**63 - 1
        rows = self._rows(sql, params)
        alias_maps = {d: self._aliases_of(d) for d in {r["domain"] for r in rows}}
        return [AdapterVersion.from_row(r, alias_maps[r["domain"]].get(r["number"], ())) for r in rows]

    def find(self, domain: str, sha256: str) -> AdapterVersion | None:
        """The live version of `domain` with this content hash, if any."""
        rows = self._rows(
            "select number from versions where domain = ? and sha256 = ? and removed_at is null order by number desc",
            [domain, sha256],
        )
        return self.resolve(Ref(domain, number=rows[0]["number"])) if rows else None

    def _store_files(self, files: Mapping[str, Path]) -> dict[str, dict[str, Any]]:
        for name in files:  # every name is checked before the first byte is stored
            check_relpath(name)
        stored: dict[str, dict[str, Any]] = {}
        for name, path in sorted(files.items()):
            sha, size = self.blobs.put_file(Path(path))
            stored[_check_relpath(name)] = {"sha256": sha, "size": size}
        return stored

    def _restore_collected(self, stored: Mapping[str, Mapping[str, Any]], files: Mapping[str, Path]) -> None:
        """Inside the write lock: put back any blob a concurrent gc removed after we stored it.

        gc holds the same lock, so once this returns and the row is inserted,
        the blobs are referenced and safe.
        """
        for name, path in files.items():
            if not self.blobs.has(stored[_check_relpath(name)]["sha256"]):
                self.blobs.put_file(Path(path))

    def check_folder(self, domain: str, folder: Path | str) -> AdapterSummary:
        """Validate a PEFT folder against a domain without storing anything."""
        dom = self.domain(domain)
        return validate_folder(Path(folder), num_labels=None if dom.generation else len(dom.labels), task=dom.task)

    def register(
        self,
        domain: str,
        folder: Path | str,
        info: VersionInfo | None = None,
        *,
        aliases: Iterable[str] = (),
        kind: str = "adapter",
        new_version: bool = False,
    ) -> AdapterVersion:
        """Validate a PEFT folder, store its files, and record it as `domain@N+1`.

        Files identical to a live version of `domain` are not registered twice:
        that version comes back with `reused=True` (nothing stored, `aliases`
        still move to it) unless `new_version`.
        """
        info = info or VersionInfo()
        folder = Path(folder)
        dom = self.domain(domain)
        aliases = [check_alias(a) for a in aliases]
        for alias in aliases:
            if alias == LATEST:
                raise AliasError("'latest' always names the newest version; it cannot be set.")
        if aliases and info.gate.get("passed") is False:
            raise FailedVersionError(
                f"This {domain} version failed its quality gate, so alias {aliases[0]!r} cannot point at it; "
                "register it without an alias (it is kept, marked failed)."
            )
        summary = self.check_folder(domain, folder)
        if info.parent is not None:  # refused before any byte is stored
            self._version_row(parse_ref(info.parent))
        sources = {name: folder / name for name in ADAPTER_FILES}
        if is_regular(folder / LABEL_CONFIG):  # label names for plain transformers/PEFT loading (README)
            sources[LABEL_CONFIG] = folder / LABEL_CONFIG
        if not new_version:
            same = self.find(domain, content_hash({n: {"sha256": sha256_file(p)} for n, p in sources.items()}))
            if same is not None:
                return self._reuse(same, aliases, sources)
        files = self._store_files(sources)
        cfg = summary.config
        peft = {**cfg.record(), "lora_modules": summary.lora_modules, "parameters": summary.parameters}
        row = {
            "domain": domain,
            "kind": kind,
            "sha256": content_hash(files),
            "files": _dumps(files),
            "size_bytes": sum(f["size"] for f in files.values()),
            "base_model": info.base_model or cfg.base_model_name_or_path or dom.base_model,
            "base_revision": info.base_revision or cfg.revision,
            "base_fingerprint": info.base_fingerprint,
            "task": dom.task,
            "labels": _dumps(list(dom.labels)),
            "peft_config": _dumps(peft),
            "data": _dumps(info.data),
            "metrics": _dumps(info.metrics),
            "train_args": _dumps(info.train_args),
            "parent": info.parent,
            "description": info.description,
            "tags": _dumps(list(info.tags)),
            "provenance": _dumps(info.provenance),
            "extra": _dumps(info.extra),
            "created_at": _now(),
            "gate": _dumps(info.gate) if info.gate else None,
            "gate_passed": int(bool(info.gate["passed"])) if "passed" in info.gate else None,
        }
        with self._lock, dbmod.write(self.db):
            self._restore_collected(files, sources)
            self._ensure_domain_row(domain)
            if info.parent is not None:
                self._version_row(parse_ref(info.parent))
            if not new_version:  # a concurrent register of the same files won the race
                same = self.find(domain, row["sha256"])
                if same is not None:
                    for alias in aliases:
                        self._move_alias(domain, alias, same.number)
                    return dataclasses.replace(self.resolve(Ref(domain, number=same.number)), reused=True)
            number = (self._latest_any(domain) or 0) + 1
            self.db.table("versions").insert({**row, "number": number})
            self._log("version.add", domain, str(number), None, row["sha256"])
            for alias in aliases:
                self._move_alias(domain, alias, number)
        log.info("registered %s@%d (%s)", domain, number, row["sha256"][:12])
        return self.resolve(Ref(domain, number=number))

    def _reuse(self, version: AdapterVersion, aliases: list[str], sources: Mapping[str, Path]) -> AdapterVersion:
        """Same files as `version`: move the asked-for aliases to it and hand it back marked reused.

        A stored blob that rotted or went missing is put back from the caller's good copy.
        """
        for name, path in sources.items():
            if self.blobs.check(version.files[name]["sha256"]) is not None:
                self.blobs.put_file(Path(path))
        if aliases and version.failed:
            raise FailedVersionError(
                f"These files are {version.ref}, which failed its quality gate, so alias {aliases[0]!r} cannot "
                f"point at it. To point it there anyway: adapters alias set {version.domain} {aliases[0]} "
                f"{version.number} --force"
            )
        if aliases:
            with self._lock, dbmod.write(self.db):
                for alias in aliases:
                    self._move_alias(version.domain, alias, version.number)
            version = self.resolve(Ref(version.domain, number=version.number))
        log.info("%s already holds these files; not registered again", version.ref)
        return dataclasses.replace(version, reused=True)

    def _latest_any(self, domain: str) -> int | None:
        # Removed versions keep their numbers: `medical@3` never names two things.
        rows = self._rows("select max(number) as n from versions where domain = ?", [domain])
        return rows[0]["n"]

    def remove(self, ref: str, *, force: bool = False) -> AdapterVersion:
        """Hide a version (its number is never reused); aliased versions need `force`."""
        parsed = parse_ref(ref)
        if parsed.number is None:
            raise VersionInUseError(
                f"Remove by number, not alias: adapters rm {parsed.domain}@N (see 'adapters list {parsed.domain}')."
            )
        with self._lock, dbmod.write(self.db):
            version = self.resolve(parsed)
            pointing = [a for a in version.aliases if a != LATEST]
            if pointing and not force:
                raise VersionInUseError(
                    f"{version.ref} is aliased as {', '.join(pointing)}. Move the alias first "
                    f"(adapters alias set {version.domain} {pointing[0]} N) or pass --force."
                )
            for alias in pointing:
                self._drop_alias(version.domain, alias)
            self.db.table("versions").update(version.id, {"removed_at": _now()})
            self._log("version.rm", version.domain, str(version.number), version.sha256, None)
        return version

    # -- aliases -------------------------------------------------------------

    def set_alias(self, domain: str, alias: str, number: int | str, *, force: bool = False) -> AdapterVersion:
        """Point `domain@alias` at a version, atomically; the move is logged for rollback.

        A version that failed its quality gate is refused unless `force`.
        """
        check_alias(alias)
        if alias == LATEST:
            raise AliasError("'latest' always names the newest version; it cannot be set.")
        ref = parse_ref(f"{domain}@{number}")
        with self._lock, dbmod.write(self.db):
            row = self._version_row(ref)
            target = row["number"]
            if row.get("gate_passed") == 0 and not force:
                reasons = "; ".join(json.loads(row["gate"] or "{}").get("reasons") or []) or "see adapters show"
                raise FailedVersionError(
                    f"{domain}@{target} failed its quality gate ({reasons}); {domain}@{alias} stays where it is. "
                    f"To point it there anyway: adapters alias set {domain} {alias} {target} --force"
                )
            self._move_alias(domain, alias, target)
        return self.resolve(Ref(domain, number=target))

    def _move_alias(self, domain: str, alias: str, number: int) -> None:
        rows = self._rows("select number from aliases where domain = ? and name = ?", [domain, alias])
        old = rows[0]["number"] if rows else None
        if old == number:
            return
        self.db.table("aliases").upsert(
            {"domain": domain, "name": alias, "number": number, "updated_at": _now()}, pk=("domain", "name")
        )
        self._log("alias.set", domain, alias, old, number)

    def _drop_alias(self, domain: str, alias: str) -> None:
        rows = self._rows("select number from aliases where domain = ? and name = ?", [domain, alias])
        if not rows:
            raise AliasError(f"No alias {alias!r} in {domain!r}. List them with: adapters alias list {domain}")
        self.db.table("aliases").delete((domain, alias))
        self._log("alias.rm", domain, alias, rows[0]["number"], None)

    def remove_alias(self, domain: str, alias: str) -> None:
        check_alias(alias)
        self.domain(domain)
        with self._lock, dbmod.write(self.db):
            self._drop_alias(domain, alias)

    def aliases(self, domain: str | None = None) -> list[dict[str, Any]]:
        sql = "select domain, name, number, updated_at from aliases"
        params: list[Any] = []
        if domain is not None:
            self.domain(domain)
            sql += " where domain = ?"
            params.append(domain)
        return self._rows(sql + " order by domain, name", params)

    def alias_history(self, domain: str, alias: str) -> list[Event]:
        check_alias(alias)
        self.domain(domain)
        rows = self._rows(
            "select * from events where domain = ? and name = ? and action in ('alias.set', 'alias.rm') order by id",
            [domain, alias],
        )
        return [Event.from_row(r) for r in rows]

    def events(self, since_id: int = 0, limit: int = 1000) -> list[Event]:
        """The change log after `since_id`; servers poll it to notice alias moves."""
        rows = self._rows("select * from events where id > ? order by id limit ?", [since_id, limit])
        return [Event.from_row(r) for r in rows]

    def last_event_id(self) -> int:
        return self._rows("select coalesce(max(id), 0) as n from events")[0]["n"]

    # -- artifacts -----------------------------------------------------------

    def add_artifact(
        self, ref: str, kind: str, name: str, files: Mapping[str, Path | str], meta: dict[str, Any] | None = None
    ) -> Artifact:
        """Store files as an artifact of a version, replacing one of the same kind and name."""
        version = self.resolve(ref)
        return self._put_artifact(version.domain, version.id, str(version.number), kind, name, files, meta)

    def add_domain_artifact(
        self, domain: str, kind: str, name: str, files: Mapping[str, Path | str], meta: dict[str, Any] | None = None
    ) -> Artifact:
        """Store files that belong to a domain but are no adapter (e.g. a full fine-tuned model)."""
        self.domain(domain)
        return self._put_artifact(domain, None, None, kind, name, files, meta)

    def _put_artifact(
        self,
        domain: str,
        version_id: int | None,
        number: str | None,
        kind: str,
        name: str,
        files: Mapping[str, Path | str],
        meta: dict[str, Any] | None,
    ) -> Artifact:
        check_name(kind, "artifact kind")
        check_name(name, "artifact name")
        if not files:
            raise ArtifactError(f"Artifact {kind}/{name} has no files.")
        sources = {n: Path(p) for n, p in files.items()}
        stored = self._store_files(sources)
        with self._lock, dbmod.write(self.db):
            self._restore_collected(stored, sources)
            self._ensure_domain_row(domain)
            owner = "version_id = ?" if version_id is not None else "version_id is null and domain = ?"
            old = self._rows(
                f"select id from artifacts where {owner} and kind = ? and name = ?",
                [version_id if version_id is not None else domain, kind, name],
            )
            if old:
                self.db.table("artifacts").delete(old[0]["id"])
            artifact_id = (
                self.db.table("artifacts")
                .insert(
                    {
                        "version_id": version_id,
                        "domain": domain,
                        "kind": kind,
                        "name": name,
                        "files": _dumps(stored),
                        "meta": _dumps(meta or {}),
                        "created_at": _now(),
                    }
                )
                .last_pk
            )
            self._log("artifact.add", domain, number, None, f"{kind}/{name}")
        return self.artifact(int(artifact_id))  # type: ignore[arg-type]

    def domain_artifacts(self, domain: str, kind: str | None = None) -> list[Artifact]:
        """Artifacts held by a domain rather than by one version."""
        self.domain(domain)
        sql = "select * from artifacts where version_id is null and domain = ?"
        params: list[Any] = [domain]
        if kind is not None:
            sql += " and kind = ?"
            params.append(kind)
        return [Artifact.from_row(r) for r in self._rows(sql + " order by kind, name", params)]

    def artifact(self, artifact_id: int) -> Artifact:
        rows = self._rows("select * from artifacts where id = ?", [artifact_id])
        if not rows:
            raise ArtifactError(f"No artifact with id {artifact_id}.")
        return Artifact.from_row(rows[0])

    def artifacts(self, ref: str, kind: str | None = None) -> list[Artifact]:
        version = self.resolve(ref)
        sql = "select * from artifacts where version_id = ?"
        params: list[Any] = [version.id]
        if kind is not None:
            sql += " and kind = ?"
            params.append(kind)
        return [Artifact.from_row(r) for r in self._rows(sql + " order by kind, name", params)]

    def find_artifact(self, ref: str, kind: str, name: str) -> Artifact | None:
        found = [a for a in self.artifacts(ref, kind) if a.name == name]
        return found[0] if found else None

    # -- materializing -------------------------------------------------------

    def _materialize(self, files: Mapping[str, Mapping[str, Any]], key: str, where: str) -> Path:
        final = self.home / "materialized" / key
        if final.is_dir() and all(
            (final / n).is_file() and sha256_file(final / n) == f["sha256"] for n, f in files.items()
        ):
            for name, f in files.items():  # the copy is fine; the blob must still be intact too
                if not self.blobs.has(f["sha256"]):
                    raise CorruptBlobError(f["sha256"], str(self.blobs.path(f["sha256"])), "missing", f"{where}/{name}")
            return final
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{key}.", suffix=".incomplete"))
        try:
            for name, f in files.items():
                dest = tmp / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.blobs.copy_verified(f["sha256"], dest, f"{where}/{name}")
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.replace(tmp, final)
            except OSError:
                # Another process materialized the same content first.
                shutil.rmtree(tmp, ignore_errors=True)
            fsync_dir(final.parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def path(self, ref: str) -> Path:
        """A local folder with the version's PEFT files, hash-checked on the way out."""
        version = self.resolve(ref)
        for name, f in version.files.items():
            problem = self.blobs.check(f["sha256"])
            if problem:
                raise CorruptBlobError(f["sha256"], str(self.blobs.path(f["sha256"])), problem, f"{version.ref}/{name}")
        return self._materialize(version.files, version.sha256, version.ref)

    def artifact_path(self, artifact: Artifact) -> Path:
        for name, f in artifact.files.items():
            problem = self.blobs.check(f["sha256"])
            if problem:
                raise CorruptBlobError(
                    f["sha256"],
                    str(self.blobs.path(f["sha256"])),
                    problem,
                    f"artifact {artifact.kind}/{artifact.name}/{name}",
                )
        return self._materialize(
            artifact.files, f"artifact-{content_hash(artifact.files)}", f"artifact {artifact.kind}/{artifact.name}"
        )

    # -- maintenance ---------------------------------------------------------

    def _referenced(self) -> dict[str, list[str]]:
        refs: dict[str, list[str]] = {}
        for row in self._rows("select domain, number, files from versions where removed_at is null"):
            for name, f in json.loads(row["files"]).items():
                refs.setdefault(f["sha256"], []).append(f"{row['domain']}@{row['number']}/{name}")
        for row in self._rows(
            "select a.kind, a.name, a.files, v.domain, v.number from artifacts a join versions v on v.id = a.version_id "
            "where v.removed_at is null"
        ):
            for name, f in json.loads(row["files"]).items():
                refs.setdefault(f["sha256"], []).append(
                    f"{row['domain']}@{row['number']}:{row['kind']}/{row['name']}/{name}"
                )
        for row in self._rows("select domain, kind, name, files from artifacts where version_id is null"):
            for name, f in json.loads(row["files"]).items():
                refs.setdefault(f["sha256"], []).append(f"{row['domain']}:{row['kind']}/{row['name']}/{name}")
        return refs

    def verify(self) -> VerifyReport:
        """Rehash every referenced blob; report each one missing or corrupt."""
        problems: list[dict[str, Any]] = []
        refs = self._referenced()
        for sha, users in sorted(refs.items()):
            problem = self.blobs.check(sha)
            if problem:
                problems.append({"sha256": sha, "problem": problem, "used_by": users})
        with self._lock:
            integrity = self.conn.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            problems.append({"sha256": None, "problem": f"index: {integrity}", "used_by": ["registry.db"]})
        return VerifyReport(checked=len(refs), problems=problems, leftovers=self._leftovers())

    def _leftovers(self) -> list[dict[str, Any]]:
        """Stale partial writes (blobs/tmp, materialized/.*.incomplete) and materialized copies nothing live uses."""
        cutoff = time.time() - GRACE_S
        found = [{"path": str(p), "what": "partial write", "bytes": _size(p)} for p in self.blobs.stale_tmp(GRACE_S)]
        folder = self.home / "materialized"
        if folder.is_dir():
            live = self._materialized_keys()
            for path in sorted(folder.iterdir()):
                if path.name.endswith(".incomplete"):
                    if path.lstat().st_mtime < cutoff:
                        found.append({"path": str(path), "what": "partial write", "bytes": _size(path)})
                elif path.name not in live and path.lstat().st_mtime < cutoff:
                    found.append(
                        {"path": str(path), "what": "copy of a removed version or artifact", "bytes": _size(path)}
                    )
        return found

    def _materialized_keys(self) -> set[str]:
        """The names `path()`/`artifact_path()` give the copies of what is live now."""
        keys = {r["sha256"] for r in self._rows("select sha256 from versions where removed_at is null")}
        for row in self._rows(
            "select a.files from artifacts a left join versions v on v.id = a.version_id "
            "where a.version_id is null or v.removed_at is null"
        ):
            keys.add(f"artifact-{content_hash(json.loads(row['files']))}")
        return keys

    def gc(self, dry_run: bool = False) -> GcReport:
        """Delete blobs no live version or artifact refers to, and stale partial writes."""
        with self._lock, dbmod.write(self.db):
            # Holding the write lock keeps a concurrent register from referencing
            # a blob between our listing and our delete; a register that stored
            # blobs before we ran puts them back under the lock (_restore_collected).
            keep = set(self._referenced())
            garbage = [sha for sha in self.blobs.all() if sha not in keep]
            freed = 0
            leftovers = self._leftovers()
            if not dry_run:
                for sha in garbage:
                    freed += self.blobs.remove(sha)
                for item in leftovers:
                    _remove_path(Path(item["path"]))
            else:
                freed = sum(self.blobs.path(s).stat().st_size for s in garbage)
            freed += sum(item["bytes"] for item in leftovers)
        return GcReport(removed=garbage, freed_bytes=freed, dry_run=dry_run, leftovers=[i["path"] for i in leftovers])

    def stats(self) -> dict[str, Any]:
        row = self._rows(
            "select count(*) as versions, coalesce(sum(size_bytes), 0) as bytes from versions where removed_at is null"
        )[0]
        return {"home": str(self.home), **row, "domains": len(self.domain_names())}

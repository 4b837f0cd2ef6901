"""What loradock keeps in a Hub repo besides the PEFT files, and the one reader that checks it.

Layout of a repo (one domain per repo), at its root: the PEFT files
(`adapter_config.json`, `adapter_model.safetensors`) so plain
`PeftModel.from_pretrained(base, "OWNER/NAME", revision="v2")` works, a model card
`README.md`, the version's plots under `plots/`, and `loradock.json` with the full
registry record and the sha256 of every other file.

Refs: version N is the tag `vN` (immutable, like a release). Each alias is a branch
of the same name pointing at its version's commit: branches are git's movable
names, so moving an alias on the Hub is deleting and recreating the branch, and
`revision="production"` resolves everywhere. `main` carries the newest version
pushed; an older version pushed later is committed on a short-lived branch so
`main` never goes backwards.

A record read back is untrusted input: every field is checked against the type
push writes, and names and paths against the registry's rules, before anything
is downloaded.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loradock.adapters.errors import HubError, HubIntegrityError, HubRecordError
from loradock.adapters.registration import is_hub_id
from loradock.registry import (
    ADAPTER_FILES,
    LABEL_CONFIG,
    TASKS,
    AdapterVersion,
    InvalidNameError,
    check_name,
    check_relpath,
    content_hash,
    sha256_file,
)

log = logging.getLogger(__name__)

METADATA_FILE = "loradock.json"
CARD_FILE = "README.md"
PLOTS_DIR = "plots"
FORMAT = "loradock/1"
VERSION_TAG = re.compile(r"^v(\d+)$")
STAGING_PREFIX = "loradock-staging-"  # branches push creates for a moment and deletes
PULLED_ARTIFACT_KINDS = ("plot",)  # what push sends; everything else in a record is ignored
_SHA256 = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def tag_order(name: str) -> tuple[int, str]:
    """Sort key putting version tags in number order (v2 before v10), other refs first."""
    m = VERSION_TAG.match(name)
    return (int(m.group(1)) if m else -1, name)


def printable(text: str) -> str:
    """Remote text without control characters (terminal escape codes), newlines and tabs kept."""
    return _CONTROL.sub("", text)


def file_entry(path: Path) -> dict[str, Any]:
    """A file as the record lists it."""
    return {"sha256": sha256_file(path), "size": path.stat().st_size}


def write_metadata(folder: Path, version: AdapterVersion, artifacts: list[dict[str, Any]]) -> None:
    """Write `loradock.json` into `folder`: the version's record and the hash of every file already there."""
    files = {p.relative_to(folder).as_posix(): file_entry(p) for p in sorted(folder.rglob("*")) if p.is_file()}
    metadata = {"format": FORMAT, "record": version.to_dict(), "files": files, "artifacts": artifacts}
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n")


def bad_record(spec: str, what: str) -> HubRecordError:
    return HubRecordError(
        f"{METADATA_FILE} in {spec} is malformed: {what}. Nothing was registered; "
        "ask the repo owner to push the version again with 'adapters push'."
    )


def read_metadata(path: Path, spec: str) -> dict[str, Any]:
    """The JSON object in a downloaded `loradock.json`; HubRecordError if it is not one."""
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise bad_record(spec, "not JSON") from None
    if not isinstance(metadata, dict):
        raise bad_record(spec, f"a {type(metadata).__name__}, not an object")
    return metadata


def _file_entries(files: Any, spec: str) -> dict[str, dict[str, Any]]:
    if not isinstance(files, dict):
        raise bad_record(spec, "'files' is not an object")
    return {n: f for n, f in files.items() if isinstance(f, dict)}


def _checked_entry(files: dict[str, dict[str, Any]], name: str, spec: str) -> dict[str, Any]:
    entry = files.get(name)
    if entry is None:
        raise bad_record(spec, f"it lists no {name!r}")
    sha, size = entry.get("sha256"), entry.get("size")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise bad_record(spec, f"{name!r} has sha256 {sha!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise bad_record(spec, f"{name!r} has size {size!r}")
    return {"sha256": sha, "size": size}


_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "domain": (str,),
    "task": (str,),
    "labels": (list,),
    "base_model": (str,),
    "base_revision": (str,),
    "base_fingerprint": (str,),
    "data": (dict,),
    "metrics": (dict,),
    "train_args": (dict,),
    "description": (str,),
    "tags": (list,),
    "extra": (dict,),
    "sha256": (str,),
    "ref": (str,),
    "parent": (str,),
    "created_at": (str,),
    "provenance": (dict,),
    "gate": (dict,),
}


def _checked_record(record: Any, spec: str) -> dict[str, Any]:
    """The record's fields, each of the type push writes, names and the base id checked."""
    if not isinstance(record, dict):
        raise bad_record(spec, "'record' is not an object")
    out: dict[str, Any] = {}
    for key, types in _RECORD_TYPES.items():
        value = record.get(key)
        if value is not None and not isinstance(value, types):
            raise bad_record(spec, f"record field {key!r} is {value!r}")
        out[key] = value
    try:
        if out["domain"] is not None:
            check_name(out["domain"], "domain")
    except InvalidNameError as exc:
        raise bad_record(spec, str(exc)) from None
    if out["task"] is not None and out["task"] not in TASKS:
        raise bad_record(spec, f"task {out['task']!r} is not one of {', '.join(TASKS)}")
    if out["labels"] is not None and not all(isinstance(x, str) for x in out["labels"]):
        raise bad_record(spec, f"labels {out['labels']!r} are not all strings")
    if out["tags"] is not None and not all(isinstance(x, str) for x in out["tags"]):
        raise bad_record(spec, f"tags {out['tags']!r} are not all strings")
    if out["base_model"] is not None and not is_hub_id(out["base_model"]):
        raise bad_record(
            spec,
            f"base_model {out['base_model']!r} is not a Hub model id (a path on the machine "
            "that pushed it means nothing here)",
        )
    if out["base_fingerprint"] and not _FINGERPRINT.fullmatch(out["base_fingerprint"]):
        raise bad_record(spec, f"base_fingerprint {out['base_fingerprint']!r} is not sha256:<64 hex digits>")
    return out


def _plot_artifacts(
    metadata: dict[str, Any], files: dict[str, dict[str, Any]], spec: str, notes: dict[str, Any]
) -> list[dict[str, Any]]:
    """The plot artifacts of a record, names checked; any other kind is ignored with a warning."""
    listed = metadata.get("artifacts") or []
    if not isinstance(listed, list):
        raise bad_record(spec, "'artifacts' is not a list")
    plots, ignored = [], []
    for artifact in listed:
        kind = artifact.get("kind") if isinstance(artifact, dict) else None
        name = artifact.get("name") if isinstance(artifact, dict) else None
        if kind not in PULLED_ARTIFACT_KINDS:
            ignored.append(f"{kind}/{name}")
            continue
        mapping = _plot_files(artifact, kind, name, spec)
        meta = artifact.get("meta")
        entries = {in_repo: _checked_entry(files, in_repo, spec) for in_repo in mapping.values()}
        plots.append(
            {
                "kind": kind,
                "name": name,
                "meta": meta if isinstance(meta, dict) else {},
                "files": mapping,
                "entries": entries,
            }
        )
    if ignored:
        log.warning(
            "%s lists artifacts loradock does not pull (only %s): %s; ignored",
            spec,
            ", ".join(PULLED_ARTIFACT_KINDS),
            ", ".join(ignored),
        )
        notes["ignored_artifacts"] = ignored
    return plots


def _plot_files(artifact: dict[str, Any], kind: str, name: Any, spec: str) -> dict[str, str]:
    """A plot artifact's mapping of stored name -> path in the repo, every name checked, every path under plots/."""
    try:
        check_name(name, "artifact name")
        mapping = artifact.get("files")
        if not isinstance(mapping, dict) or not mapping:
            raise InvalidNameError(f"artifact {kind}/{name} lists no files")
        for rel, in_repo in mapping.items():
            check_relpath(rel)
            if not isinstance(in_repo, str) or not in_repo.startswith(f"{PLOTS_DIR}/"):
                raise InvalidNameError(f"artifact {kind}/{name} points at {in_repo!r}, outside {PLOTS_DIR}/")
            check_relpath(in_repo)
    except InvalidNameError as exc:
        raise bad_record(spec, str(exc)) from None
    return mapping


@dataclass(frozen=True)
class Recorded:
    """A checked `loradock.json`: what a pull downloads (with the size and hash each file must have)."""

    record: dict[str, Any]  # every field of the type push writes
    adapter: dict[str, dict[str, Any]]  # PEFT file name -> {"sha256", "size"}
    plots: list[dict[str, Any]]
    notes: dict[str, Any]  # what was ignored
    sha256: str  # the content hash the adapter files must add up to


def checked_metadata(metadata: dict[str, Any], spec: str) -> Recorded:
    """Every check on a record that needs no download: format, fields, file entries, plots, the content hash."""
    if metadata.get("format") != FORMAT:
        raise HubError(
            f"{METADATA_FILE} in {spec} is not one this loradock can read (format {metadata.get('format')!r}, "
            f"expected {FORMAT!r} with both PEFT files listed); upgrade loradock and pull again."
        )
    record = _checked_record(metadata.get("record") or {}, spec)
    files = _file_entries(metadata.get("files") or {}, spec)
    adapter = {name: _checked_entry(files, name, spec) for name in ADAPTER_FILES}
    if LABEL_CONFIG in ((metadata.get("record") or {}).get("files") or {}):  # the version's label names travel too
        adapter[LABEL_CONFIG] = _checked_entry(files, LABEL_CONFIG, spec)
    notes: dict[str, Any] = {}
    plots = _plot_artifacts(metadata, files, spec, notes)
    adapter_hash = content_hash(adapter)
    if record.get("sha256") and adapter_hash != record["sha256"]:
        raise HubIntegrityError(
            f"The adapter files in {spec} hash to {adapter_hash[:12]} but the record says "
            f"{record['sha256'][:12]}; nothing was registered."
        )
    return Recorded(record, adapter, plots, notes, adapter_hash)


def remote_gate(gate: Any, spec: str) -> dict[str, Any]:
    """The gate result a pulled version is registered with.

    A remote record saying the version FAILED its gate is believed: it can only keep the version away from
    aliases and `latest`. A remote "passed" cannot be checked here (its metrics are the remote's word), so the
    version arrives unchecked, with the remote's claim kept under `remote`.
    """
    if not gate:
        return {}
    if not isinstance(gate.get("passed"), bool):
        raise bad_record(spec, f"record field 'gate' has passed={gate.get('passed')!r}")
    reasons = [printable(str(r)) for r in gate.get("reasons") or [] if isinstance(r, (str, int, float))][:20]
    if gate["passed"]:
        return {"remote": {"passed": True}}
    return {"passed": False, "reasons": reasons or ["failed its quality gate where it was trained"], "source": "remote"}

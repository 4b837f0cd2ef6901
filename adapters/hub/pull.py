"""Pull a version from a Hugging Face Hub repo, verify it and register it locally.

A Hub repo is untrusted input. Pull downloads only what it will register (the
PEFT files and the plots push sends), checks each file's size against the record
before downloading or hashing it, checks everything (names, labels against the
head, base, artifact names) before the first write, and never moves a local
alias unless asked with `aliases`. Remote branches are shown and recorded.
A repo without `loradock.json` (plain PEFT) has its metadata inferred from
`adapter_config.json` and the model card.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from loradock.adapters.errors import BaseModelError, HubConflictError, HubError
from loradock.adapters.hub.model_card import read_card
from loradock.adapters.hub.record import (
    CARD_FILE,
    METADATA_FILE,
    STAGING_PREFIX,
    VERSION_TAG,
    checked_metadata,
    file_entry,
    printable,
    read_metadata,
    remote_gate,
    tag_order,
)
from loradock.adapters.hub.transport import (
    MAX_METADATA_BYTES,
    Downloader,
    Remote,
    hub_errors,
    parse_repo_spec,
    retrying,
)
from loradock.adapters.registration import check_fits_base, is_hub_id, local_fingerprint
from loradock.registry import (
    ADAPTER_FILES,
    DEFAULT_BASE,
    DEFAULT_GENERATION_BASE,
    GENERATION,
    LATEST,
    AdapterVersion,
    Domain,
    InvalidAdapterError,
    InvalidNameError,
    Registry,
    UnknownDomainError,
    VersionInfo,
    check_alias,
    check_name,
    content_hash,
    validate_folder,
)
from loradock.registry.adapter_config import read_adapter_config

log = logging.getLogger(__name__)

# Remote branch names are shown and recorded; ones outside this alphabet (escape codes, newlines) are dropped.
_SAFE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")


@dataclass(frozen=True)
class PullReport:
    version: AdapterVersion
    created: bool  # False: the same content was already registered
    repo_id: str
    revision: str
    commit_sha: str
    remote_ref: str | None
    aliases: list[str]  # local aliases moved, only the ones asked for
    inferred: bool
    remote_branches: list[str] = field(default_factory=list)  # Hub branches at the pulled commit, never applied
    unverified: bool = False  # no base fingerprint: the server refuses it unless --allow-unverified-base


@dataclass
class _Staged:
    """Everything a pull registers, downloaded and verified, before the registry is touched."""

    domain: str | None
    labels: list[str] | None
    folder: Path
    info: dict[str, Any]
    artifacts: list[dict[str, Any]]
    inferred: bool
    sha256: str
    origin: dict[str, Any]
    tmp: tempfile.TemporaryDirectory[str]
    notes: dict[str, Any] = field(default_factory=dict)  # what was ignored or could not be verified
    task: str | None = None  # the record's task; None for a plain PEFT repo (the local domain's then)


@dataclass(frozen=True)
class _Origin:
    repo_id: str
    revision: str
    sha: str
    remote_ref: str | None
    branches: list[str]


def pull(
    registry: Registry,
    spec: str,
    *,
    domain: str | None = None,
    force: bool = False,
    aliases: Iterable[str] = (),
    api: HfApi | None = None,
) -> PullReport:
    """Download `OWNER/NAME[@REV]`, verify it, and register it locally (once per content hash).

    Local aliases move only when named in `aliases`; the remote branches at the
    pulled commit are reported and kept in the version's provenance.
    """
    api = api or HfApi()
    repo_id, revision = parse_repo_spec(spec)
    revision = revision or "main"
    wanted = _check_aliases(aliases)
    if domain is not None:
        check_name(domain, "domain")
    with hub_errors(api, repo_id, revision):
        info = retrying("repo info", lambda: api.model_info(repo_id, revision=revision))
        sha = str(info.sha)
        remote = retrying("list refs", lambda: Remote.read(api, repo_id))
        download = Downloader(api, repo_id, revision, sha)
        metadata_path = download.optional(METADATA_FILE, cap=MAX_METADATA_BYTES)
        if metadata_path is not None:
            staged = _stage_recorded(download, read_metadata(metadata_path, spec), spec)
        else:
            staged = _stage_inferred(download, repo_id, domain, spec, registry.domain_names())
    return _register(registry, staged, domain, force, _origin(remote, repo_id, revision, sha), wanted)


def _origin(remote: Remote, repo_id: str, revision: str, sha: str) -> _Origin:
    """Where the pulled commit sits among the repo's refs: its newest version tag and its alias branches."""
    version_tags = sorted((t for t, s in remote.tags.items() if s == sha and VERSION_TAG.match(t)), key=tag_order)
    remote_ref = version_tags[-1] if version_tags else (revision if revision != sha else None)
    branches = sorted(
        b
        for b, s in remote.branches.items()
        if s == sha and b != "main" and not b.startswith(STAGING_PREFIX) and _SAFE_REF.fullmatch(b)
    )
    return _Origin(repo_id, revision, sha, remote_ref, branches)


def _check_aliases(aliases: Iterable[str]) -> list[str]:
    wanted = [check_alias(a) for a in aliases]
    if LATEST in wanted:
        raise InvalidNameError("'latest' always names the newest version; it cannot be set.")
    return wanted


@contextlib.contextmanager
def _staging() -> Iterator[tuple[tempfile.TemporaryDirectory[str], Path]]:
    """A fresh folder to download into: removed if a download fails, else `_Staged` removes it after registering."""
    tmp = tempfile.TemporaryDirectory(prefix="loradock-pull-")
    try:
        folder = Path(tmp.name) / "adapter"
        folder.mkdir()
        yield tmp, folder
    except BaseException:
        tmp.cleanup()
        raise


def _stage_recorded(download: Downloader, metadata: dict[str, Any], spec: str) -> _Staged:
    recorded = checked_metadata(metadata, spec)  # every check that needs no download, before the first one
    with _staging() as (tmp, folder):
        for name, entry in recorded.adapter.items():  # only what will be registered is downloaded
            shutil.copyfile(download.verified(name, entry), folder / name)
        for plot in recorded.plots:
            paths = {in_repo: download.verified(in_repo, entry) for in_repo, entry in plot["entries"].items()}
            plot["paths"] = {rel: paths[in_repo] for rel, in_repo in plot["files"].items()}
    record = recorded.record
    keys = (
        "base_model",
        "base_revision",
        "base_fingerprint",
        "data",
        "metrics",
        "train_args",
        "description",
        "tags",
        "extra",
    )
    info = {k: record.get(k) for k in keys}
    info["description"] = printable(info["description"] or "")
    info["tags"] = [printable(t) for t in info["tags"] or []]
    origin = {k: record.get(k) for k in ("ref", "sha256", "created_at", "parent", "provenance")}
    info["gate"] = remote_gate(record.get("gate"), spec)
    return _Staged(
        record.get("domain"),
        record.get("labels"),
        folder,
        info,
        recorded.plots,
        False,
        recorded.sha256,
        origin,
        tmp,
        recorded.notes,
        record.get("task"),
    )


def _stage_inferred(download: Downloader, repo_id: str, domain: str | None, spec: str, known: list[str]) -> _Staged:
    with _staging() as (tmp, folder):
        for name in ADAPTER_FILES:
            shutil.copyfile(download.get(name), folder / name)
        card_path = download.optional(CARD_FILE, cap=MAX_METADATA_BYTES)
        card = read_card(card_path.read_text(encoding="utf-8", errors="replace")) if card_path else None
    try:
        config = read_adapter_config(folder)
    except InvalidAdapterError:
        config = None  # validation refuses it with this message before anything is written
    files = {n: file_entry(folder / n) for n in ADAPTER_FILES}
    # A plain repo's config often names a path on the machine that trained it: only a Hub id is used.
    named = [b for b in (config and config.base_model_name_or_path, card.base_model if card else None) if is_hub_id(b)]
    revision = config.revision if config else None
    info = {
        "base_model": named[0] if named else None,
        "base_revision": revision if named and isinstance(revision, str) else None,
        "base_fingerprint": None,
        "metrics": dict(card.metrics) if card else {},
        "description": printable(card.description if card else "") or f"Pulled from {repo_id} (a plain PEFT repo).",
        "tags": [printable(str(t)) for t in (card.tags if card else [])],
        "extra": {"license": card.license} if card and card.license else {},
    }
    inferred_domain = domain or _domain_from_tags(card.tags if card else [], spec, known)
    return _Staged(inferred_domain, None, folder, info, [], True, content_hash(files), {}, tmp)


def _domain_from_tags(tags: list[str], spec: str, known: list[str]) -> str:
    """The one local domain a plain repo's card names among its tags."""
    named = [t for t in tags if t in known]
    if len(named) == 1:
        return named[0]
    raise HubError(
        f"{spec} has no {METADATA_FILE} and its model card names no single loradock domain"
        f"{' (tags: ' + ', '.join(tags) + ')' if tags else ''}; pass --domain DOMAIN, e.g. "
        f"adapters pull {spec} --domain sentiment."
    )


def _register(
    registry: Registry, staged: _Staged, domain: str | None, force: bool, origin: _Origin, aliases: list[str]
) -> PullReport:
    with staged.tmp:
        name = domain or staged.domain
        if not name:
            raise HubError(f"{origin.repo_id} does not say which domain it is for; pass --domain DOMAIN.")
        where = f"{origin.repo_id}@{origin.revision}"
        # Every check comes before the first write, so a refused pull leaves the registry as it was.
        dom, new_domain = _target_domain(registry, name, staged)
        validate_folder(staged.folder, num_labels=None if dom.generation else len(dom.labels), task=dom.task)
        info = dict(staged.info)
        info.update(_base(staged.folder, info, dom, where, force))
        parent = None if new_domain else _local_parent(registry, name, origin.repo_id, staged.origin.get("parent"))
        if new_domain:
            registry.add_domain(dom)
        version = registry.register(
            name,
            staged.folder,
            VersionInfo(
                base_model=info.get("base_model"),
                base_revision=info.get("base_revision"),
                base_fingerprint=info.get("base_fingerprint"),
                data=info.get("data") or {},
                metrics=info.get("metrics") or {},
                train_args=info.get("train_args") or {},
                parent=parent,
                description=info.get("description") or "",
                tags=list(info.get("tags") or []),
                provenance=_provenance(staged, origin),
                extra=info.get("extra") or {},
                gate=info.get("gate") or {},
            ),
            aliases=aliases,
        )
        if version.reused:
            log.info("%s is already registered as %s", where, version.ref)
        else:
            log.info("pulled %s as %s", where, version.ref)
        for artifact in staged.artifacts:  # also completes a pull that stopped between version and plots
            if registry.find_artifact(version.ref, artifact["kind"], artifact["name"]) is None:
                registry.add_artifact(
                    version.ref, artifact["kind"], artifact["name"], artifact["paths"], artifact["meta"]
                )
        return PullReport(
            registry.resolve(version.ref),
            not version.reused,
            origin.repo_id,
            origin.revision,
            origin.sha,
            origin.remote_ref,
            aliases,
            staged.inferred,
            origin.branches,
            not info.get("base_fingerprint"),
        )


def _provenance(staged: _Staged, origin: _Origin) -> dict[str, Any]:
    """Where a pulled version came from, as its provenance records it."""
    provenance: dict[str, Any] = {
        "source": "hub",
        "hub_repo": origin.repo_id,
        "hub_revision": origin.revision,
        "commit_sha": origin.sha,
        "remote_ref": origin.remote_ref,
        "remote_branches": origin.branches,
    }
    if staged.inferred:
        provenance["inferred"] = True
    if staged.origin:
        provenance["origin"] = staged.origin
    if staged.notes:
        provenance["ignored"] = staged.notes
    return provenance


def _target_domain(registry: Registry, name: str, staged: _Staged) -> tuple[Domain, bool]:
    """The local domain to register into, and whether it must be created (from the pulled record)."""
    try:
        dom, new = registry.domain(name), False
    except UnknownDomainError:
        if staged.task == GENERATION:  # a generation domain has no labels: its record's task is enough
            base = staged.info.get("base_model") or DEFAULT_GENERATION_BASE
            return Domain(name=name, labels=(), task=GENERATION, base_model=base), True
        if not staged.labels:
            raise
        # A user-defined domain travels with its versions: recreate it from the record.
        base = staged.info.get("base_model") or DEFAULT_BASE
        dom, new = Domain(name=name, labels=tuple(staged.labels), base_model=base), True
    if staged.task is not None and staged.task != dom.task:
        raise HubConflictError(
            f"Local domain {name!r} is a {dom.task} domain but the pulled version is {staged.task}; "
            f"pull it into another domain with --domain NAME (a new one is created with the version's task)."
        )
    if staged.labels and list(dom.labels) != list(staged.labels):
        raise HubConflictError(
            f"Local domain {name!r} has labels {list(dom.labels)} but the pulled version was trained on "
            f"{list(staged.labels)}; pull it into another domain with --domain NAME."
        )
    return dom, new


def _base(folder: Path, info: dict[str, Any], dom: Domain, where: str, force: bool) -> dict[str, Any]:
    """The base the version records: its fingerprint checked (or computed) against the local copy when there is one.

    No fingerprint and no local base: it stays empty, which marks the version
    unverified (the server refuses it unless --allow-unverified-base).
    """
    name = info.get("base_model") or dom.base_model
    revision = info.get("base_revision")
    recorded = info.get("base_fingerprint") or None
    found = local_fingerprint(name, revision)
    if found is None:
        if recorded:
            log.info("base %s of %s is not on this machine; its fingerprint is checked when it is loaded", name, where)
        else:
            log.warning(
                "base %s of %s is not on this machine and %s records no fingerprint: registered unverified",
                name,
                where,
                where,
            )
        return {"base_model": name, "base_revision": revision, "base_fingerprint": recorded}
    folder_b, local = found
    if recorded and local != recorded and not force:
        raise BaseModelError(
            f"{where} was trained on base {name!r} with fingerprint {recorded[:19]}, but the local "
            f"copy has {local[:19]}; it would give wrong outputs here. Install the matching base, or pass --force."
        )
    if not force:
        check_fits_base(folder, folder_b, name)
    return {"base_model": name, "base_revision": revision, "base_fingerprint": recorded or local}


def _local_parent(registry: Registry, domain: str, repo_id: str, parent: str | None) -> str | None:
    """The local ref of a pulled version's parent, if that parent was pulled from the same repo."""
    if not parent or "@" not in parent or not parent.rsplit("@", 1)[1].isdigit():
        return None
    tag = f"v{parent.rsplit('@', 1)[1]}"
    for v in registry.versions(domain):
        if v.provenance.get("hub_repo") == repo_id and v.provenance.get("remote_ref") == tag:
            return v.ref
    return None

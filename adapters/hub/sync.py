"""Push registered versions to a Hugging Face Hub repo and pull them back.

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

Transport, cache, retries of single requests and progress bars are
`huggingface_hub`'s; this module retries whole steps on network errors, maps Hub
errors to `HubError`s that name the next step, and never sees or stores a token.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from loradock.registry import (
    DEFAULT_BASE,
    AdapterVersion,
    Domain,
    Registry,
    UnknownDomainError,
    VersionInfo,
    content_hash,
)
from loradock.registry.blobs import sha256_file
from loradock.registry.errors import InvalidNameError
from loradock.registry.names import LATEST, check_alias

from loradock.adapters.errors import (
    BaseModelError,
    HubAuthError,
    HubConflictError,
    HubError,
    HubFileNotFoundError,
    HubIntegrityError,
    HubNetworkError,
    HubRepoNotFoundError,
    HubRevisionNotFoundError,
)
from loradock.adapters.hub.model_card import read_card, render_card

try:  # huggingface_hub >= 2 speaks httpx2; older releases httpx
    import httpx2 as _httpx
except ImportError:  # pragma: no cover
    import httpx as _httpx  # type: ignore[no-redef]

log = logging.getLogger(__name__)

METADATA_FILE = "loradock.json"
CARD_FILE = "README.md"
PLOTS_DIR = "plots"
FORMAT = "loradock/1"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
_VERSION_TAG = re.compile(r"^v(\d+)$")
_STAGING_PREFIX = "loradock-staging-"  # branches we create for a moment and delete

# Whole-step retries on network errors, on top of huggingface_hub's per-request ones.
RETRIES = 3
RETRY_WAIT_S = 1.0

T = TypeVar("T")


@dataclass(frozen=True)
class PushedVersion:
    ref: str
    tag: str
    commit_sha: str
    uploaded: bool  # False: the Hub already had this exact version


@dataclass(frozen=True)
class PushReport:
    repo_id: str
    url: str
    versions: list[PushedVersion]
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> tag it was moved to on the Hub
    skipped_aliases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PullReport:
    version: AdapterVersion
    created: bool  # False: the same content was already registered
    repo_id: str
    revision: str
    commit_sha: str
    remote_ref: str | None
    aliases: list[str]
    inferred: bool


def parse_repo_spec(spec: str) -> tuple[str, str | None]:
    """`OWNER/NAME[@REV]` -> (repo id, revision or None); `@2` means tag `v2`."""
    repo_id, _, revision = spec.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HubError(f"Invalid Hub repo {spec!r}: use OWNER/NAME or OWNER/NAME@REV, e.g. alice/sentiment-lora@v2.")
    if "@" in spec and not revision:
        raise HubError(f"Empty revision in {spec!r}: name a tag, branch, alias or commit after '@'.")
    if revision and revision.isdigit():
        revision = f"v{revision}"
    return repo_id, revision or None


# -- errors and retries ------------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_offline(exc: BaseException) -> bool:
    return any(isinstance(e, OfflineModeIsEnabled) for e in _chain(exc))


def _is_network(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a transport failure worth retrying."""
    if _is_offline(exc):
        return False
    for current in _chain(exc):
        if isinstance(current, (_httpx.TransportError, ConnectionError, LocalEntryNotFoundError)):
            return True
        if isinstance(current, HfHubHTTPError) and current.response is not None and current.response.status_code >= 500:
            return True
    return False


def _retrying(step: str, fn: Callable[[], T], retries: int | None = None) -> T:
    """Run `fn`, again with exponential backoff on network errors (a step must be safe to redo)."""
    attempts = max(1, RETRIES if retries is None else retries)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not _is_network(exc) or attempt == attempts:
                raise
            wait = RETRY_WAIT_S * 2 ** (attempt - 1)
            log.warning("%s failed (%s); retrying in %.1fs [%d/%d]", step, type(exc).__name__, wait, attempt, attempts - 1)
            time.sleep(wait)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _hub_errors(api: HfApi, repo_id: str, revision: str | None = None, action: str = "pull") -> Iterator[None]:
    """Turn huggingface_hub and transport errors into HubErrors naming the value and the next step."""
    try:
        yield
    except HubError:
        raise
    except Exception as exc:
        translated = _translate(exc, api, repo_id, revision, action)
        if translated is None:
            raise
        raise translated from None


def _translate(exc: Exception, api: HfApi, repo_id: str, revision: str | None, action: str) -> HubError | None:
    endpoint = api.endpoint
    if _is_offline(exc):
        return HubNetworkError(f"HF_HUB_OFFLINE is set, so {repo_id} on {endpoint} cannot be reached; unset it to {action}.")
    if isinstance(exc, RepositoryNotFoundError):
        return HubRepoNotFoundError(
            f"Hub repo {repo_id!r} not found on {endpoint} (or it is private and your token cannot see it). "
            f"Check the name; for a private repo set HF_TOKEN or run 'hf auth login'."
        )
    if isinstance(exc, RevisionNotFoundError):
        return HubRevisionNotFoundError(f"Revision {revision!r} not found in {repo_id}. {_refs_hint(api, repo_id)}")
    if _is_network(exc):
        return _network_error(exc, repo_id, endpoint, action)
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            return HubAuthError(
                f"{endpoint} refused to let you {action} {repo_id} (HTTP {status}). Use a token with write access: "
                "set HF_TOKEN or run 'hf auth login'."
            )
        return HubError(f"{endpoint} answered HTTP {status} while trying to {action} {repo_id}: {_first_line(exc)}")
    return None


def _network_error(exc: BaseException, repo_id: str, endpoint: str, action: str) -> HubNetworkError:
    nothing = "nothing was registered locally" if action == "pull" else "the local registry is unchanged"
    return HubNetworkError(
        f"Network error while trying to {action} {repo_id} on {endpoint} ({type(exc).__name__}), after retries; "
        f"{nothing}. Run the same command again: finished uploads and downloads are reused."
    )


def _first_line(exc: BaseException) -> str:
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def _refs_hint(api: HfApi, repo_id: str) -> str:
    try:
        refs = api.list_repo_refs(repo_id)
    except (HfHubHTTPError, _httpx.TransportError):  # the hint is best effort; the error itself is what matters
        return "List its tags and branches on the Hub."
    tags = sorted((t.name for t in refs.tags), key=_tag_order)
    branches = sorted(b.name for b in refs.branches)
    example = tags[-1] if tags else "main"
    return f"Tags: {', '.join(tags) or 'none'}; branches: {', '.join(branches)}. E.g. adapters pull {repo_id}@{example}"


def _tag_order(name: str) -> tuple[int, str]:
    m = _VERSION_TAG.match(name)
    return (int(m.group(1)) if m else -1, name)


# -- push ----------------------------------------------------------------------------


@dataclass
class _Remote:
    tags: dict[str, str]
    branches: dict[str, str]

    @classmethod
    def read(cls, api: HfApi, repo_id: str) -> _Remote:
        refs = api.list_repo_refs(repo_id)
        return cls({t.name: t.target_commit for t in refs.tags}, {b.name: b.target_commit for b in refs.branches})

    def newest_version(self) -> int:
        return max((int(m.group(1)) for t in self.tags if (m := _VERSION_TAG.match(t))), default=0)


def push(registry: Registry, ref: str, repo_id: str, *, private: bool = False, all_versions: bool = False,
         api: HfApi | None = None, license: str | None = None) -> PushReport:
    """Upload `ref` (or every version of its domain) to `repo_id`, tag it `vN` and mirror aliases as branches."""
    api = api or HfApi()
    parse_repo_spec(repo_id)
    first = registry.resolve(ref)
    versions = sorted(registry.versions(first.domain), key=lambda v: v.number) if all_versions else [first]
    with _hub_errors(api, repo_id, action="push to"):
        url = str(_retrying("create repo", lambda: api.create_repo(repo_id, private=private, exist_ok=True)))
        remote = _retrying("list refs", lambda: _Remote.read(api, repo_id))
        _check_domain(api, repo_id, remote, first.domain)
        pushed = [_push_version(registry, api, repo_id, v, remote, license) for v in versions]
        moved, skipped = _mirror_aliases(registry, api, repo_id, first.domain, remote)
    return PushReport(repo_id, url, pushed, moved, skipped)


def _check_domain(api: HfApi, repo_id: str, remote: _Remote, domain: str) -> None:
    """One repo holds one domain: refuse to mix `medical` versions into a `sentiment` repo."""
    if not remote.newest_version():
        return
    tag = f"v{remote.newest_version()}"
    record = _remote_metadata(api, repo_id, remote.tags[tag])
    theirs = (record or {}).get("record", {}).get("domain")
    if theirs and theirs != domain:
        raise HubConflictError(
            f"Hub repo {repo_id} holds domain {theirs!r}, not {domain!r}; push {domain} to a repo of its own."
        )


def _remote_metadata(api: HfApi, repo_id: str, revision: str) -> dict[str, Any] | None:
    path = _Downloader(api, repo_id, revision, revision).optional(METADATA_FILE)
    return json.loads(path.read_text()) if path else None


def _push_version(registry: Registry, api: HfApi, repo_id: str, version: AdapterVersion, remote: _Remote,
                  license: str | None) -> PushedVersion:
    tag = f"v{version.number}"
    if tag in remote.tags:
        record = (_remote_metadata(api, repo_id, remote.tags[tag]) or {}).get("record", {})
        if record.get("sha256") != version.sha256:
            raise HubConflictError(
                f"{repo_id}@{tag} holds different content ({str(record.get('sha256'))[:12]}) than {version.ref} "
                f"({version.sha256[:12]}); push to another repo, or delete tag {tag} on the Hub first."
            )
        log.info("%s is already on %s as %s", version.ref, repo_id, tag)
        return PushedVersion(version.ref, tag, remote.tags[tag], uploaded=False)
    with tempfile.TemporaryDirectory(prefix="loradock-push-") as tmp:
        stage = _stage(registry, version, repo_id, Path(tmp), license)
        # `main` only moves forward; an older version gets a commit of its own off to the side.
        branch = "main" if version.number > remote.newest_version() else f"{_STAGING_PREFIX}{tag}"
        if branch != "main":
            _retrying("create branch", lambda: api.create_branch(repo_id, branch=branch, revision="main", exist_ok=True))
        commit = _retrying("upload", lambda: api.upload_folder(
            repo_id=repo_id, folder_path=stage, revision=branch, delete_patterns=[f"{PLOTS_DIR}/*"],
            commit_message=f"{version.ref} ({version.sha256[:12]})",
            commit_description=f"loradock version {version.ref}, tagged {tag}.",
        ))
    sha = commit.oid
    _retrying("create tag", lambda: api.create_tag(repo_id, tag=tag, revision=sha, tag_message=version.ref, exist_ok=True))
    if branch != "main":
        _retrying("delete branch", lambda: api.delete_branch(repo_id, branch=branch))
    remote.tags[tag] = sha
    log.info("pushed %s to %s@%s (%s)", version.ref, repo_id, tag, sha[:12])
    return PushedVersion(version.ref, tag, sha, uploaded=True)


def _stage(registry: Registry, version: AdapterVersion, repo_id: str, folder: Path, license: str | None) -> Path:
    """Write the repo's files for `version` into `folder`."""
    source = registry.path(version.ref)
    for name in version.files:
        shutil.copyfile(source / name, folder / name)
    artifacts = []
    plots: list[str] = []
    for artifact in registry.artifacts(version.ref, kind="plot"):
        src = registry.artifact_path(artifact)
        mapping = {}
        for rel in sorted(artifact.files):
            in_repo = f"{PLOTS_DIR}/{rel}" if len(artifact.files) == 1 else f"{PLOTS_DIR}/{artifact.name}/{rel}"
            (folder / in_repo).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, folder / in_repo)
            mapping[rel] = in_repo
            plots.append(in_repo)
        artifacts.append({"kind": artifact.kind, "name": artifact.name, "meta": artifact.meta, "files": mapping})
    card = render_card(version, repo_id, plots, **({"license": license} if license else {}))
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    files = {
        p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "size": p.stat().st_size}
        for p in sorted(folder.rglob("*")) if p.is_file()
    }
    metadata = {"format": FORMAT, "record": version.to_dict(), "files": files, "artifacts": artifacts}
    (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n")
    return folder


def _mirror_aliases(registry: Registry, api: HfApi, repo_id: str, domain: str,
                    remote: _Remote) -> tuple[dict[str, str], list[str]]:
    """Point a branch per local alias at its version's tag, when that version is on the Hub."""
    moved: dict[str, str] = {}
    skipped: list[str] = []
    for row in registry.aliases(domain):
        alias, tag = row["name"], f"v{row['number']}"
        if alias == "main" or _VERSION_TAG.match(alias) or alias.startswith(_STAGING_PREFIX):
            log.warning("alias %r would clash with a Hub ref name; not mirrored", alias)
            skipped.append(alias)
            continue
        target = remote.tags.get(tag)
        if target is None or remote.branches.get(alias) == target:
            continue
        if alias in remote.branches:
            _retrying("move alias", functools.partial(api.delete_branch, repo_id, branch=alias))
        _retrying("set alias", functools.partial(api.create_branch, repo_id, branch=alias, revision=target, exist_ok=True))
        remote.branches[alias] = target
        moved[alias] = tag
    return moved, skipped


# -- pull ----------------------------------------------------------------------------


def pull(registry: Registry, spec: str, *, domain: str | None = None, force: bool = False,
         api: HfApi | None = None) -> PullReport:
    """Download `OWNER/NAME[@REV]`, verify it, and register it locally (once per content hash)."""
    api = api or HfApi()
    repo_id, revision = parse_repo_spec(spec)
    revision = revision or "main"
    with _hub_errors(api, repo_id, revision):
        info = _retrying("repo info", lambda: api.model_info(repo_id, revision=revision))
        sha = str(info.sha)
        remote = _retrying("list refs", lambda: _Remote.read(api, repo_id))
        download = _Downloader(api, repo_id, revision, sha)
        metadata_path = download.optional(METADATA_FILE)
        if metadata_path is not None:
            staged = _stage_recorded(download, json.loads(metadata_path.read_text()), spec)
        else:
            staged = _stage_inferred(download, repo_id, domain, spec, registry.domain_names())
    version_tags = sorted((t for t, s in remote.tags.items() if s == sha and _VERSION_TAG.match(t)), key=_tag_order)
    remote_ref = version_tags[-1] if version_tags else (revision if revision != sha else None)
    aliases = sorted(b for b, s in remote.branches.items()
                     if s == sha and b != "main" and not b.startswith(_STAGING_PREFIX) and _valid_alias(b))
    return _register(registry, staged, domain, force, repo_id, revision, sha, remote_ref, aliases)


def _valid_alias(name: str) -> bool:
    try:
        check_alias(name)
    except InvalidNameError:
        return False
    return name != LATEST


class _Downloader:
    """Files of one commit through huggingface_hub's cache, re-fetched once if the cached copy is bad."""

    def __init__(self, api: HfApi, repo_id: str, revision: str, sha: str) -> None:
        self.api, self.repo_id, self.revision, self.sha = api, repo_id, revision, sha

    def get(self, name: str, force: bool = False) -> Path:
        try:
            # By commit sha: a tag or branch moving mid-pull cannot mix two versions.
            return Path(_retrying(f"download {name}", lambda: hf_hub_download(
                self.repo_id, name, revision=self.sha, endpoint=self.api.endpoint, token=self.api.token,
                force_download=force)))
        except RemoteEntryNotFoundError:
            raise HubFileNotFoundError(
                f"{self.repo_id}@{self.revision} has no file {name!r}: it was not pushed with 'adapters push' "
                f"or PEFT's save_pretrained()/push_to_hub(). Pick another revision, or push the version again."
            ) from None

    def optional(self, name: str) -> Path | None:
        try:
            return self.get(name)
        except HubFileNotFoundError:
            return None

    def verified(self, name: str, expected: dict[str, Any], spec: str) -> Path:
        path = self.get(name)
        if sha256_file(path) != expected["sha256"]:
            log.warning("%s from the cache does not match its recorded hash; downloading it again", name)
            path = self.get(name, force=True)
        got = sha256_file(path)
        if got != expected["sha256"]:
            raise HubIntegrityError(
                f"{name} in {self.repo_id}@{self.revision} has sha256 {got[:12]} but {METADATA_FILE} records "
                f"{expected['sha256'][:12]}: the copy on the Hub is corrupt or was changed. Nothing was "
                f"registered; ask the repo owner to push the version again."
            )
        return path


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


def _stage_recorded(download: _Downloader, metadata: dict[str, Any], spec: str) -> _Staged:
    record, files = metadata.get("record") or {}, metadata.get("files") or {}
    missing = [n for n in ADAPTER_FILES if n not in files]
    if metadata.get("format") != FORMAT or missing:
        raise HubError(f"{METADATA_FILE} in {spec} is not one this loradock can read (format {metadata.get('format')!r}, "
                       f"expected {FORMAT!r} with both PEFT files listed); upgrade loradock and pull again.")
    tmp = tempfile.TemporaryDirectory(prefix="loradock-pull-")
    folder = Path(tmp.name) / "adapter"
    folder.mkdir()
    paths = {name: download.verified(name, f, spec) for name, f in sorted(files.items())}
    for name in ADAPTER_FILES:
        shutil.copyfile(paths[name], folder / name)
    adapter_hash = content_hash({n: files[n] for n in ADAPTER_FILES})
    if record.get("sha256") and adapter_hash != record["sha256"]:
        raise HubIntegrityError(f"The adapter files in {spec} hash to {adapter_hash[:12]} but the record says "
                                f"{record['sha256'][:12]}; nothing was registered.")
    artifacts = [
        {**a, "paths": {rel: paths[in_repo] for rel, in_repo in a["files"].items()}}
        for a in metadata.get("artifacts") or []
    ]
    keys = ("base_model", "base_revision", "base_fingerprint", "data", "metrics", "train_args", "description", "tags", "extra")
    origin = {k: record.get(k) for k in ("ref", "sha256", "created_at", "parent", "provenance")}
    return _Staged(record.get("domain"), record.get("labels"), folder, {k: record.get(k) for k in keys}, artifacts,
                   False, adapter_hash, origin, tmp)


def _stage_inferred(download: _Downloader, repo_id: str, domain: str | None, spec: str, known: list[str]) -> _Staged:
    tmp = tempfile.TemporaryDirectory(prefix="loradock-pull-")
    folder = Path(tmp.name) / "adapter"
    folder.mkdir()
    for name in ADAPTER_FILES:
        shutil.copyfile(download.get(name), folder / name)
    card_path = download.optional(CARD_FILE)
    card = read_card(card_path.read_text(encoding="utf-8")) if card_path else None
    config = json.loads((folder / "adapter_config.json").read_text())
    files = {n: {"sha256": sha256_file(folder / n), "size": (folder / n).stat().st_size} for n in ADAPTER_FILES}
    info = {
        "base_model": config.get("base_model_name_or_path") or (card.base_model if card else None),
        "base_revision": config.get("revision"),
        "base_fingerprint": None,
        "metrics": dict(card.metrics) if card else {},
        "description": (card.description if card else "") or f"Pulled from {repo_id} (a plain PEFT repo).",
        "tags": [t for t in (card.tags if card else [])],
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


def _register(registry: Registry, staged: _Staged, domain: str | None, force: bool, repo_id: str, revision: str,
              sha: str, remote_ref: str | None, aliases: list[str]) -> PullReport:
    with staged.tmp:
        name = domain or staged.domain
        if not name:
            raise HubError(f"{repo_id} does not say which domain it is for; pass --domain DOMAIN.")
        dom, new_domain = _target_domain(registry, name, staged)
        info = dict(staged.info)
        # Every refusal comes before the first write, so a refused pull leaves the registry as it was.
        if staged.inferred:
            info.update(_local_base(staged.folder, dom, info, force))
        elif not force:
            _check_base(info, f"{repo_id}@{revision}")
        if new_domain:
            registry.add_domain(dom)
        version = registry.find(name, staged.sha256)
        created = version is None
        if version is None:
            provenance: dict[str, Any] = {"source": "hub", "hub_repo": repo_id, "hub_revision": revision,
                                          "commit_sha": sha, "remote_ref": remote_ref}
            if staged.inferred:
                provenance["inferred"] = True
            if staged.origin:
                provenance["origin"] = staged.origin
            version = registry.register(name, staged.folder, VersionInfo(
                base_model=info.get("base_model"), base_revision=info.get("base_revision"),
                base_fingerprint=info.get("base_fingerprint"), data=info.get("data") or {},
                metrics=info.get("metrics") or {}, train_args=info.get("train_args") or {},
                parent=_local_parent(registry, name, repo_id, staged.origin.get("parent")),
                description=info.get("description") or "", tags=list(info.get("tags") or []),
                provenance=provenance, extra=info.get("extra") or {},
            ), aliases=aliases)
            log.info("pulled %s@%s as %s", repo_id, revision, version.ref)
        else:
            for alias in aliases:
                registry.set_alias(name, alias, version.number)
            log.info("%s@%s is already registered as %s", repo_id, revision, version.ref)
        for artifact in staged.artifacts:  # also completes a pull that stopped between version and plots
            if registry.find_artifact(version.ref, artifact["kind"], artifact["name"]) is None:
                registry.add_artifact(version.ref, artifact["kind"], artifact["name"], artifact["paths"],
                                      artifact.get("meta"))
        return PullReport(registry.resolve(version.ref), created, repo_id, revision, sha, remote_ref, aliases,
                          staged.inferred)


def _target_domain(registry: Registry, name: str, staged: _Staged) -> tuple[Domain, bool]:
    """The local domain to register into, and whether it must be created (from the pulled record)."""
    try:
        dom, new = registry.domain(name), False
    except UnknownDomainError:
        if not staged.labels:
            raise
        # A user-defined domain travels with its versions: recreate it from the record.
        base = staged.info.get("base_model") or DEFAULT_BASE
        dom, new = Domain(name=name, labels=tuple(staged.labels), base_model=base), True
    if staged.labels and list(dom.labels) != list(staged.labels):
        raise HubConflictError(
            f"Local domain {name!r} has labels {list(dom.labels)} but the pulled version was trained on "
            f"{list(staged.labels)}; pull it into another domain with --domain NAME."
        )
    return dom, new


def _check_base(info: dict[str, Any], where: str) -> None:
    from loradock.adapters.base import base_info

    recorded = info.get("base_fingerprint")
    if not recorded or not info.get("base_model"):
        return
    local = base_info(info["base_model"], info.get("base_revision"))["base_fingerprint"]
    if local != recorded:
        raise BaseModelError(
            f"{where} was trained on base {info['base_model']!r} with fingerprint {recorded[:19]}, but the local "
            f"copy has {local[:19]}; it would give wrong outputs here. Install the matching base, or pass --force."
        )


def _local_base(folder: Path, dom: Domain, info: dict[str, Any], force: bool) -> dict[str, Any]:
    """Base metadata for a plain PEFT adapter: its config's base, fingerprinted from the local copy."""
    from loradock.adapters.registration import base_metadata_for_folder

    try:
        return base_metadata_for_folder(folder, dom.base_model)
    except BaseModelError:
        if not force:
            raise
        return {"base_model": info.get("base_model") or dom.base_model, "base_revision": info.get("base_revision"),
                "base_fingerprint": None}


def _local_parent(registry: Registry, domain: str, repo_id: str, parent: str | None) -> str | None:
    """The local ref of a pulled version's parent, if that parent was pulled from the same repo."""
    if not parent or "@" not in parent or not parent.rsplit("@", 1)[1].isdigit():
        return None
    tag = f"v{parent.rsplit('@', 1)[1]}"
    for v in registry.versions(domain):
        if v.provenance.get("hub_repo") == repo_id and v.provenance.get("remote_ref") == tag:
            return v.ref
    return None


__all__ = ["METADATA_FILE", "PullReport", "PushReport", "PushedVersion", "parse_repo_spec", "pull", "push"]

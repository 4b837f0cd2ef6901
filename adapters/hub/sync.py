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
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
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
from loradock.registry.adapter_config import read_adapter_config
from loradock.registry.blobs import sha256_file
from loradock.registry.errors import InvalidAdapterError, InvalidNameError, UnsafeFileError
from loradock.registry.names import LATEST, check_alias, check_name
from loradock.registry.peft_files import LABEL_CONFIG, MAX_WEIGHTS_BYTES, validate_folder
from loradock.registry.regular_files import is_regular
from loradock.registry.store import check_relpath

from loradock.adapters.errors import (
    BaseModelError,
    HubAuthError,
    HubConflictError,
    HubError,
    HubFileNotFoundError,
    HubIntegrityError,
    HubLocalBaseError,
    HubNetworkError,
    HubRepoNotFoundError,
    HubRecordError,
    HubRevisionNotFoundError,
)
from loradock.adapters.hub.model_card import read_card, render_card
from loradock.adapters.registration import is_hub_id, local_fingerprint

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
    aliases: list[str]  # local aliases moved, only the ones asked for
    inferred: bool
    remote_branches: list[str] = field(default_factory=list)  # Hub branches at the pulled commit, never applied
    unverified: bool = False  # no base fingerprint: the server refuses it unless --allow-unverified-base


def _valid_repo_id(repo_id: str) -> bool:
    """What huggingface_hub itself accepts as a repo id (it raises HFValidationError, a bare ValueError)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        return False
    return True


def parse_repo_spec(spec: str) -> tuple[str, str | None]:
    """`OWNER/NAME[@REV]` -> (repo id, revision or None); `@2` means tag `v2`."""
    repo_id, _, revision = spec.partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")) or not _valid_repo_id(repo_id):
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
         api: HfApi | None = None, license: str | None = None, base_id: str | None = None) -> PushReport:
    """Upload `ref` (or every version of its domain) to `repo_id`, tag it `vN` and mirror aliases as branches.

    `base_id` is the Hub id to publish for versions whose base is a local folder
    (without it they are refused before anything is uploaded).
    """
    api = api or HfApi()
    if parse_repo_spec(repo_id)[1] is not None:
        raise HubError(f"Push to a repo, not a revision: {repo_id!r}; drop the '@...' (versions become tags vN).")
    first = registry.resolve(ref)
    versions = sorted(registry.versions(first.domain), key=lambda v: v.number) if all_versions else [first]
    versions = [_publishable(v, repo_id, base_id) for v in versions]  # every refusal before the first Hub call
    with _hub_errors(api, repo_id, action="push to"):
        url = str(_retrying("create repo", lambda: api.create_repo(repo_id, private=private, exist_ok=True)))
        remote = _retrying("list refs", lambda: _Remote.read(api, repo_id))
        _check_domain(api, repo_id, remote, first.domain)
        pushed = [_push_version(registry, api, repo_id, v, remote, license) for v in versions]
        moved, skipped = _mirror_aliases(registry, api, repo_id, first.domain, remote)
    return PushReport(repo_id, url, pushed, moved, skipped)


LOCAL_BASE_MESSAGE = (
    "{ref} names its base by a local path, {base!r} (fingerprint {fingerprint}), which no Hub id is known for; "
    "a pull on another machine could not load it, so nothing was pushed. Pass the Hub id of a model with "
    "exactly those weights: adapters push {ref} --repo {repo} --base-id ORG/NAME"
)


def _publishable(version: AdapterVersion, repo_id: str, base_id: str | None) -> AdapterVersion:
    """`version` as the Hub record will name it: its base a Hub id, or refused (pull accepts nothing else)."""
    if version.base_model is None or is_hub_id(version.base_model):
        return version
    if base_id is None:
        raise HubLocalBaseError(LOCAL_BASE_MESSAGE.format(
            ref=version.ref, base=version.base_model, fingerprint=(version.base_fingerprint or "none")[:19],
            repo=repo_id))
    if not is_hub_id(base_id) or "/" not in base_id:
        raise HubLocalBaseError(f"--base-id {base_id!r} is not a Hub model id; pass it as ORG/NAME.")
    found = local_fingerprint(base_id)  # when this machine holds it, its weights must be the version's
    if found is not None and version.base_fingerprint and found[1] != version.base_fingerprint:
        raise HubLocalBaseError(
            f"--base-id {base_id} has fingerprint {found[1][:19]} here, but {version.ref} was trained on "
            f"{version.base_fingerprint[:19]} ({version.base_model}); name the Hub model with the same weights.")
    return replace(version, base_model=base_id, base_revision=None)


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
    path = _Downloader(api, repo_id, revision, revision).optional(METADATA_FILE, cap=MAX_METADATA_BYTES)
    if path is None:
        return None
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    return metadata if isinstance(metadata, dict) and isinstance(metadata.get("record", {}), dict) else None


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
#
# A Hub repo is untrusted input. Pull downloads only what it will register (the
# PEFT files and the plots push sends), checks each file's size against the record
# before downloading or hashing it, checks everything (names, labels against the
# head, base, artifact names) before the first write, and never moves a local
# alias unless asked with `aliases`. Remote branches are shown and recorded.

# Caps on what a pull downloads; a LoRA adapter is a few MB, a plot a few hundred KB.
MAX_FILE_BYTES = MAX_WEIGHTS_BYTES  # what register accepts, so a pulled adapter is never refused for its size alone
MAX_METADATA_BYTES = 4 << 20
PULLED_ARTIFACT_KINDS = ("plot",)  # what push sends; everything else in a record is ignored
_SHA256 = re.compile(r"[0-9a-f]{64}")
# A git blob id or an LFS sha256 in practice; never a path (huggingface_hub names cache files after it).
_SAFE_ETAG = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")
# Remote branch names are shown and recorded; ones outside this alphabet (escape codes, newlines) are dropped.
_SAFE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _printable(text: str) -> str:
    """Remote text without control characters (terminal escape codes), newlines and tabs kept."""
    return _CONTROL.sub("", text)
_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")


def pull(registry: Registry, spec: str, *, domain: str | None = None, force: bool = False,
         aliases: Iterable[str] = (), api: HfApi | None = None) -> PullReport:
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
    with _hub_errors(api, repo_id, revision):
        info = _retrying("repo info", lambda: api.model_info(repo_id, revision=revision))
        sha = str(info.sha)
        remote = _retrying("list refs", lambda: _Remote.read(api, repo_id))
        download = _Downloader(api, repo_id, revision, sha)
        metadata_path = download.optional(METADATA_FILE, cap=MAX_METADATA_BYTES)
        if metadata_path is not None:
            staged = _stage_recorded(download, _read_metadata(metadata_path, spec), spec)
        else:
            staged = _stage_inferred(download, repo_id, domain, spec, registry.domain_names())
    version_tags = sorted((t for t, s in remote.tags.items() if s == sha and _VERSION_TAG.match(t)), key=_tag_order)
    remote_ref = version_tags[-1] if version_tags else (revision if revision != sha else None)
    branches = sorted(b for b, s in remote.branches.items()
                      if s == sha and b != "main" and not b.startswith(_STAGING_PREFIX) and _SAFE_REF.fullmatch(b))
    return _register(registry, staged, domain, force, _Origin(repo_id, revision, sha, remote_ref, branches), wanted)


def _check_aliases(aliases: Iterable[str]) -> list[str]:
    wanted = [check_alias(a) for a in aliases]
    if LATEST in wanted:
        raise InvalidNameError("'latest' always names the newest version; it cannot be set.")
    return wanted


class _Downloader:
    """Files of one commit through huggingface_hub's cache, re-fetched once if the cached copy is bad."""

    def __init__(self, api: HfApi, repo_id: str, revision: str, sha: str) -> None:
        self.api, self.repo_id, self.revision, self.sha = api, repo_id, revision, sha

    def _not_found(self, name: str) -> HubFileNotFoundError:
        return HubFileNotFoundError(
            f"{self.repo_id}@{self.revision} has no file {name!r}: it was not pushed with 'adapters push' "
            f"or PEFT's save_pretrained()/push_to_hub(). Pick another revision, or push the version again."
        )

    def _remote_size(self, name: str) -> int | None:
        url = hf_hub_url(self.repo_id, name, revision=self.sha, endpoint=self.api.endpoint)
        meta = _retrying(f"size of {name}", lambda: get_hf_file_metadata(url, token=self.api.token))
        if meta.etag is not None and not _SAFE_ETAG.fullmatch(meta.etag):
            raise self._escapes_cache(name)  # before huggingface_hub writes to `blobs/<etag>`
        return meta.size

    def _escapes_cache(self, name: str) -> HubIntegrityError:
        return HubIntegrityError(
            f"{self.repo_id}@{self.revision} answered for {name} with a file id that points outside the download "
            "cache (at a file on this machine); nothing was read or registered. Do not pull from this repo."
        )

    def _cached_file(self, name: str, pointer: Path) -> Path:
        """The regular file behind huggingface_hub's pointer `<repo folder>/snapshots/<sha>/<name>`, refused unless
        it lies inside that repo's cache folder.

        The pointer is a link to `blobs/<ETag>`, the ETag as the server sent it, unchecked by huggingface_hub:
        an ETag such as "/home/me/.ssh/id_rsa" would make the pointer name that file.
        """
        snapshots = pointer.parents[len(PurePosixPath(name).parts)]
        real = Path(os.path.realpath(pointer))
        try:
            ok = snapshots.name == "snapshots" and real.is_relative_to(os.path.realpath(snapshots.parent)) \
                and is_regular(real)
        except UnsafeFileError:
            ok = False
        if not ok:
            raise self._escapes_cache(name)
        return real

    def _check_size(self, name: str, size: int | None, expected: int | None, cap: int, when: str) -> None:
        if size is None:
            raise HubIntegrityError(f"{self.repo_id}@{self.revision} does not say how big {name} is; nothing was "
                                    "registered.")
        if expected is not None and size != expected:
            raise HubIntegrityError(
                f"{name} in {self.repo_id}@{self.revision} is {size} bytes {when} but {METADATA_FILE} records "
                f"{expected}: the copy on the Hub is corrupt or was changed. Nothing was registered."
            )
        if size > cap:
            raise HubRecordError(
                f"{name} in {self.repo_id}@{self.revision} is {size} bytes, over the {cap}-byte limit for a pulled "
                "file; nothing was registered. An adapter this large is not one loradock pushed."
            )

    def get(self, name: str, *, expected: int | None = None, cap: int | None = None, force: bool = False) -> Path:
        """Download `name` once its advertised size fits the record and the cap; check the bytes' size too."""
        cap = MAX_FILE_BYTES if cap is None else cap
        try:
            self._check_size(name, self._remote_size(name), expected, cap, "on the Hub")
            # By commit sha: a tag or branch moving mid-pull cannot mix two versions.
            path = Path(_retrying(f"download {name}", lambda: hf_hub_download(
                self.repo_id, name, revision=self.sha, endpoint=self.api.endpoint, token=self.api.token,
                force_download=force)))
        except RemoteEntryNotFoundError:
            raise self._not_found(name) from None
        path = self._cached_file(name, path)
        self._check_size(name, path.stat().st_size, expected, cap, "as downloaded")
        return path

    def optional(self, name: str, cap: int | None = None) -> Path | None:
        try:
            return self.get(name, cap=cap)
        except HubFileNotFoundError:
            return None

    def verified(self, name: str, expected: dict[str, Any], spec: str) -> Path:
        path = self.get(name, expected=expected["size"])
        if sha256_file(path) != expected["sha256"]:
            log.warning("%s from the cache does not match its recorded hash; downloading it again", name)
            path = self.get(name, expected=expected["size"], force=True)
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
    notes: dict[str, Any] = field(default_factory=dict)  # what was ignored or could not be verified


@dataclass(frozen=True)
class _Origin:
    repo_id: str
    revision: str
    sha: str
    remote_ref: str | None
    branches: list[str]


def _bad_record(spec: str, what: str) -> HubRecordError:
    return HubRecordError(f"{METADATA_FILE} in {spec} is malformed: {what}. Nothing was registered; "
                          "ask the repo owner to push the version again with 'adapters push'.")


def _read_metadata(path: Path, spec: str) -> dict[str, Any]:
    try:
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise _bad_record(spec, "not JSON") from None
    if not isinstance(metadata, dict):
        raise _bad_record(spec, f"a {type(metadata).__name__}, not an object")
    return metadata


def _file_entries(files: Any, spec: str) -> dict[str, dict[str, Any]]:
    if not isinstance(files, dict):
        raise _bad_record(spec, "'files' is not an object")
    return {n: f for n, f in files.items() if isinstance(f, dict)}


def _checked_entry(files: dict[str, dict[str, Any]], name: str, spec: str) -> dict[str, Any]:
    entry = files.get(name)
    if entry is None:
        raise _bad_record(spec, f"it lists no {name!r}")
    sha, size = entry.get("sha256"), entry.get("size")
    if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise _bad_record(spec, f"{name!r} has sha256 {sha!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _bad_record(spec, f"{name!r} has size {size!r}")
    return {"sha256": sha, "size": size}


_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "domain": (str,), "labels": (list,), "base_model": (str,), "base_revision": (str,), "base_fingerprint": (str,),
    "data": (dict,), "metrics": (dict,), "train_args": (dict,), "description": (str,), "tags": (list,),
    "extra": (dict,), "sha256": (str,), "ref": (str,), "parent": (str,), "created_at": (str,), "provenance": (dict,),
    "gate": (dict,),
}


def _checked_record(record: Any, spec: str) -> dict[str, Any]:
    """The record's fields, each of the type push writes, names and the base id checked."""
    if not isinstance(record, dict):
        raise _bad_record(spec, "'record' is not an object")
    out: dict[str, Any] = {}
    for key, types in _RECORD_TYPES.items():
        value = record.get(key)
        if value is not None and not isinstance(value, types):
            raise _bad_record(spec, f"record field {key!r} is {value!r}")
        out[key] = value
    try:
        if out["domain"] is not None:
            check_name(out["domain"], "domain")
    except InvalidNameError as exc:
        raise _bad_record(spec, str(exc)) from None
    if out["labels"] is not None and not all(isinstance(x, str) for x in out["labels"]):
        raise _bad_record(spec, f"labels {out['labels']!r} are not all strings")
    if out["tags"] is not None and not all(isinstance(x, str) for x in out["tags"]):
        raise _bad_record(spec, f"tags {out['tags']!r} are not all strings")
    if out["base_model"] is not None and not is_hub_id(out["base_model"]):
        raise _bad_record(spec, f"base_model {out['base_model']!r} is not a Hub model id (a path on the machine "
                                "that pushed it means nothing here)")
    if out["base_fingerprint"] and not _FINGERPRINT.fullmatch(out["base_fingerprint"]):
        raise _bad_record(spec, f"base_fingerprint {out['base_fingerprint']!r} is not sha256:<64 hex digits>")
    return out


def _plot_artifacts(metadata: dict[str, Any], files: dict[str, dict[str, Any]], spec: str,
                    notes: dict[str, Any]) -> list[dict[str, Any]]:
    """The plot artifacts of a record, names checked; any other kind is ignored with a warning."""
    listed = metadata.get("artifacts") or []
    if not isinstance(listed, list):
        raise _bad_record(spec, "'artifacts' is not a list")
    plots, ignored = [], []
    for artifact in listed:
        kind = artifact.get("kind") if isinstance(artifact, dict) else None
        name = artifact.get("name") if isinstance(artifact, dict) else None
        if kind not in PULLED_ARTIFACT_KINDS:
            ignored.append(f"{kind}/{name}")
            continue
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
            raise _bad_record(spec, str(exc)) from None
        meta = artifact.get("meta")
        entries = {in_repo: _checked_entry(files, in_repo, spec) for in_repo in mapping.values()}
        plots.append({"kind": kind, "name": name, "meta": meta if isinstance(meta, dict) else {}, "files": mapping,
                      "entries": entries})
    if ignored:
        log.warning("%s lists artifacts loradock does not pull (only %s): %s; ignored", spec,
                    ", ".join(PULLED_ARTIFACT_KINDS), ", ".join(ignored))
        notes["ignored_artifacts"] = ignored
    return plots


def _stage_recorded(download: _Downloader, metadata: dict[str, Any], spec: str) -> _Staged:
    if metadata.get("format") != FORMAT:
        raise HubError(f"{METADATA_FILE} in {spec} is not one this loradock can read (format {metadata.get('format')!r}, "
                       f"expected {FORMAT!r} with both PEFT files listed); upgrade loradock and pull again.")
    record = _checked_record(metadata.get("record") or {}, spec)
    files = _file_entries(metadata.get("files") or {}, spec)
    adapter = {name: _checked_entry(files, name, spec) for name in ADAPTER_FILES}
    if LABEL_CONFIG in ((metadata.get("record") or {}).get("files") or {}):  # the version's label names travel too
        adapter[LABEL_CONFIG] = _checked_entry(files, LABEL_CONFIG, spec)
    notes: dict[str, Any] = {}
    plots = _plot_artifacts(metadata, files, spec, notes)
    adapter_hash = content_hash(adapter)
    if record.get("sha256") and adapter_hash != record["sha256"]:
        raise HubIntegrityError(f"The adapter files in {spec} hash to {adapter_hash[:12]} but the record says "
                                f"{record['sha256'][:12]}; nothing was registered.")
    tmp = tempfile.TemporaryDirectory(prefix="loradock-pull-")
    try:
        folder = Path(tmp.name) / "adapter"
        folder.mkdir()
        for name, entry in adapter.items():  # only what will be registered is downloaded
            shutil.copyfile(download.verified(name, entry, spec), folder / name)
        for plot in plots:
            paths = {in_repo: download.verified(in_repo, entry, spec) for in_repo, entry in plot["entries"].items()}
            plot["paths"] = {rel: paths[in_repo] for rel, in_repo in plot["files"].items()}
    except BaseException:
        tmp.cleanup()
        raise
    keys = ("base_model", "base_revision", "base_fingerprint", "data", "metrics", "train_args", "description", "tags", "extra")
    info = {k: record.get(k) for k in keys}
    info["description"] = _printable(info["description"] or "")
    info["tags"] = [_printable(t) for t in info["tags"] or []]
    origin = {k: record.get(k) for k in ("ref", "sha256", "created_at", "parent", "provenance")}
    info["gate"] = remote_gate(record.get("gate"), spec)
    return _Staged(record.get("domain"), record.get("labels"), folder, info, plots, False, adapter_hash, origin, tmp,
                   notes)


def remote_gate(gate: Any, spec: str) -> dict[str, Any]:
    """The gate result a pulled version is registered with.

    A remote record saying the version FAILED its gate is believed: it can only keep the version away from
    aliases and `latest`. A remote "passed" cannot be checked here (its metrics are the remote's word), so the
    version arrives unchecked, with the remote's claim kept under `remote`.
    """
    if not gate:
        return {}
    if not isinstance(gate.get("passed"), bool):
        raise _bad_record(spec, f"record field 'gate' has passed={gate.get('passed')!r}")
    reasons = [_printable(str(r)) for r in gate.get("reasons") or [] if isinstance(r, (str, int, float))][:20]
    if gate["passed"]:
        return {"remote": {"passed": True}}
    return {"passed": False, "reasons": reasons or ["failed its quality gate where it was trained"],
            "source": "remote"}


def _stage_inferred(download: _Downloader, repo_id: str, domain: str | None, spec: str, known: list[str]) -> _Staged:
    tmp = tempfile.TemporaryDirectory(prefix="loradock-pull-")
    try:
        folder = Path(tmp.name) / "adapter"
        folder.mkdir()
        for name in ADAPTER_FILES:
            shutil.copyfile(download.get(name), folder / name)
        card_path = download.optional(CARD_FILE, cap=MAX_METADATA_BYTES)
        card = read_card(card_path.read_text(encoding="utf-8", errors="replace")) if card_path else None
    except BaseException:
        tmp.cleanup()
        raise
    try:
        config = read_adapter_config(folder)
    except InvalidAdapterError:
        config = None  # validation refuses it with this message before anything is written
    files = {n: {"sha256": sha256_file(folder / n), "size": (folder / n).stat().st_size} for n in ADAPTER_FILES}
    # A plain repo's config often names a path on the machine that trained it: only a Hub id is used.
    named = [b for b in (config and config.base_model_name_or_path, card.base_model if card else None) if is_hub_id(b)]
    revision = config.revision if config else None
    info = {
        "base_model": named[0] if named else None,
        "base_revision": revision if named and isinstance(revision, str) else None,
        "base_fingerprint": None,
        "metrics": dict(card.metrics) if card else {},
        "description": _printable(card.description if card else "") or f"Pulled from {repo_id} (a plain PEFT repo).",
        "tags": [_printable(str(t)) for t in (card.tags if card else [])],
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


def _register(registry: Registry, staged: _Staged, domain: str | None, force: bool, origin: _Origin,
              aliases: list[str]) -> PullReport:
    with staged.tmp:
        name = domain or staged.domain
        if not name:
            raise HubError(f"{origin.repo_id} does not say which domain it is for; pass --domain DOMAIN.")
        where = f"{origin.repo_id}@{origin.revision}"
        # Every check comes before the first write, so a refused pull leaves the registry as it was.
        dom, new_domain = _target_domain(registry, name, staged)
        validate_folder(staged.folder, num_labels=len(dom.labels))
        info = dict(staged.info)
        info.update(_base(staged.folder, info, dom, where, force))
        parent = None if new_domain else _local_parent(registry, name, origin.repo_id, staged.origin.get("parent"))
        provenance: dict[str, Any] = {"source": "hub", "hub_repo": origin.repo_id, "hub_revision": origin.revision,
                                      "commit_sha": origin.sha, "remote_ref": origin.remote_ref,
                                      "remote_branches": origin.branches}
        if staged.inferred:
            provenance["inferred"] = True
        if staged.origin:
            provenance["origin"] = staged.origin
        if staged.notes:
            provenance["ignored"] = staged.notes
        if new_domain:
            registry.add_domain(dom)
        version = registry.register(name, staged.folder, VersionInfo(
            base_model=info.get("base_model"), base_revision=info.get("base_revision"),
            base_fingerprint=info.get("base_fingerprint"), data=info.get("data") or {},
            metrics=info.get("metrics") or {}, train_args=info.get("train_args") or {},
            parent=parent, description=info.get("description") or "", tags=list(info.get("tags") or []),
            provenance=provenance, extra=info.get("extra") or {}, gate=info.get("gate") or {},
        ), aliases=aliases)
        if version.reused:
            log.info("%s is already registered as %s", where, version.ref)
        else:
            log.info("pulled %s as %s", where, version.ref)
        for artifact in staged.artifacts:  # also completes a pull that stopped between version and plots
            if registry.find_artifact(version.ref, artifact["kind"], artifact["name"]) is None:
                registry.add_artifact(version.ref, artifact["kind"], artifact["name"], artifact["paths"],
                                      artifact["meta"])
        return PullReport(registry.resolve(version.ref), not version.reused, origin.repo_id, origin.revision,
                          origin.sha, origin.remote_ref, aliases, staged.inferred, origin.branches,
                          not info.get("base_fingerprint"))


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


def _base(folder: Path, info: dict[str, Any], dom: Domain, where: str, force: bool) -> dict[str, Any]:
    """The base the version records: its fingerprint checked (or computed) against the local copy when there is one.

    No fingerprint and no local base: it stays empty, which marks the version
    unverified (the server refuses it unless --allow-unverified-base).
    """
    from loradock.adapters.registration import check_fits_base, local_fingerprint

    name = info.get("base_model") or dom.base_model
    revision = info.get("base_revision")
    recorded = info.get("base_fingerprint") or None
    found = local_fingerprint(name, revision)
    if found is None:
        if recorded:
            log.info("base %s of %s is not on this machine; its fingerprint is checked when it is loaded", name, where)
        else:
            log.warning("base %s of %s is not on this machine and %s records no fingerprint: registered unverified",
                        name, where, where)
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


__all__ = ["METADATA_FILE", "PullReport", "PushReport", "PushedVersion", "parse_repo_spec", "pull", "push"]

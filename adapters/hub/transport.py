"""Talking to the Hub: repo ids, whole-step retries, the one translation of Hub errors, and safe downloads.

Transport, cache, retries of single requests and progress bars are
`huggingface_hub`'s; this module retries whole steps on network errors, maps Hub
errors to `HubError`s that name the next step, and never sees or stores a token.
Downloads are capped in size before and after they happen, and only ever read
from inside huggingface_hub's cache.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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

from loradock.adapters.errors import (
    HubAuthError,
    HubError,
    HubFileNotFoundError,
    HubIntegrityError,
    HubNetworkError,
    HubRecordError,
    HubRepoNotFoundError,
    HubRevisionNotFoundError,
)
from loradock.adapters.hub.record import METADATA_FILE, VERSION_TAG, tag_order
from loradock.registry import MAX_WEIGHTS_BYTES, UnsafeFileError, is_regular, sha256_file

try:  # huggingface_hub >= 2 speaks httpx2; older releases httpx
    import httpx2 as _httpx
except ImportError:  # pragma: no cover
    import httpx as _httpx  # type: ignore[no-redef]

log = logging.getLogger(__name__)

# Whole-step retries on network errors, on top of huggingface_hub's per-request ones.
RETRIES = 3
RETRY_WAIT_S = 1.0

# Caps on what a pull downloads; a LoRA adapter is a few MB, a plot a few hundred KB.
MAX_FILE_BYTES = MAX_WEIGHTS_BYTES  # what register accepts, so a pulled adapter is never refused for its size alone
MAX_METADATA_BYTES = 4 << 20
# A git blob id or an LFS sha256 in practice; never a path (huggingface_hub names cache files after it).
_SAFE_ETAG = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")

T = TypeVar("T")


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


def retrying(step: str, fn: Callable[[], T], retries: int | None = None) -> T:
    """Run `fn`, again with exponential backoff on network errors (a step must be safe to redo)."""
    attempts = max(1, RETRIES if retries is None else retries)
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if not _is_network(exc) or attempt == attempts:
                raise
            wait = RETRY_WAIT_S * 2 ** (attempt - 1)
            log.warning(
                "%s failed (%s); retrying in %.1fs [%d/%d]", step, type(exc).__name__, wait, attempt, attempts - 1
            )
            time.sleep(wait)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def hub_errors(api: HfApi, repo_id: str, revision: str | None = None, action: str = "pull") -> Iterator[None]:
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
        return HubNetworkError(
            f"HF_HUB_OFFLINE is set, so {repo_id} on {endpoint} cannot be reached; unset it to {action}."
        )
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
    tags = sorted((t.name for t in refs.tags), key=tag_order)
    branches = sorted(b.name for b in refs.branches)
    example = tags[-1] if tags else "main"
    return f"Tags: {', '.join(tags) or 'none'}; branches: {', '.join(branches)}. E.g. adapters pull {repo_id}@{example}"


# -- refs and downloads --------------------------------------------------------------


@dataclass
class Remote:
    """A repo's tags and branches (name -> commit sha), read once per push or pull."""

    tags: dict[str, str]
    branches: dict[str, str]

    @classmethod
    def read(cls, api: HfApi, repo_id: str) -> Remote:
        refs = api.list_repo_refs(repo_id)
        return cls({t.name: t.target_commit for t in refs.tags}, {b.name: b.target_commit for b in refs.branches})

    def newest_version(self) -> int:
        return max((int(m.group(1)) for t in self.tags if (m := VERSION_TAG.match(t))), default=0)


class Downloader:
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
        meta = retrying(f"size of {name}", lambda: get_hf_file_metadata(url, token=self.api.token))
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
            ok = (
                snapshots.name == "snapshots"
                and real.is_relative_to(os.path.realpath(snapshots.parent))
                and is_regular(real)
            )
        except UnsafeFileError:
            ok = False
        if not ok:
            raise self._escapes_cache(name)
        return real

    def _check_size(self, name: str, size: int | None, expected: int | None, cap: int, when: str) -> None:
        if size is None:
            raise HubIntegrityError(
                f"{self.repo_id}@{self.revision} does not say how big {name} is; nothing was registered."
            )
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
            path = Path(
                retrying(
                    f"download {name}",
                    lambda: hf_hub_download(
                        self.repo_id,
                        name,
                        revision=self.sha,
                        endpoint=self.api.endpoint,
                        token=self.api.token,
                        force_download=force,
                    ),
                )
            )
        except RemoteEntryNotFoundError:
            raise self._not_found(name) from None
        path = self._cached_file(name, path)
        self._check_size(name, path.stat().st_size, expected, cap, "as downloaded")
        return path

    def optional(self, name: str, cap: int | None = None) -> Path | None:
        """`get`, or None when the commit has no such file."""
        try:
            return self.get(name, cap=cap)
        except HubFileNotFoundError:
            return None

    def verified(self, name: str, expected: dict[str, Any]) -> Path:
        """`get`, its bytes checked against the sha256 the record lists (one fresh download if the cache is bad)."""
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

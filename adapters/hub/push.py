"""Push registered versions to a Hugging Face Hub repo: tag `vN`, model card, plots, aliases as branches.

The repo's layout and refs are described in `record`; every refusal (a local
base without a Hub id, another domain's repo, different content under a tag)
comes before the first upload.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from huggingface_hub import HfApi

from loradock.adapters.errors import HubConflictError, HubError, HubLocalBaseError, HubRecordError
from loradock.adapters.hub.model_card import render_card
from loradock.adapters.hub.record import (
    CARD_FILE,
    METADATA_FILE,
    PLOTS_DIR,
    STAGING_PREFIX,
    VERSION_TAG,
    read_metadata,
    write_metadata,
)
from loradock.adapters.hub.transport import (
    MAX_METADATA_BYTES,
    Downloader,
    Remote,
    hub_errors,
    parse_repo_spec,
    retrying,
)
from loradock.adapters.registration import is_hub_id, local_fingerprint
from loradock.registry import AdapterVersion, Registry

log = logging.getLogger(__name__)


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


def push(
    registry: Registry,
    ref: str,
    repo_id: str,
    *,
    private: bool = False,
    all_versions: bool = False,
    api: HfApi | None = None,
    license: str | None = None,
    base_id: str | None = None,
) -> PushReport:
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
    with hub_errors(api, repo_id, action="push to"):
        url = str(retrying("create repo", lambda: api.create_repo(repo_id, private=private, exist_ok=True)))
        remote = retrying("list refs", lambda: Remote.read(api, repo_id))
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
        raise HubLocalBaseError(
            LOCAL_BASE_MESSAGE.format(
                ref=version.ref,
                base=version.base_model,
                fingerprint=(version.base_fingerprint or "none")[:19],
                repo=repo_id,
            )
        )
    if not is_hub_id(base_id) or "/" not in base_id:
        raise HubLocalBaseError(f"--base-id {base_id!r} is not a Hub model id; pass it as ORG/NAME.")
    found = local_fingerprint(base_id)  # when this machine holds it, its weights must be the version's
    if found is not None and version.base_fingerprint and found[1] != version.base_fingerprint:
        raise HubLocalBaseError(
            f"--base-id {base_id} has fingerprint {found[1][:19]} here, but {version.ref} was trained on "
            f"{version.base_fingerprint[:19]} ({version.base_model}); name the Hub model with the same weights."
        )
    return replace(version, base_model=base_id, base_revision=None)


def _check_domain(api: HfApi, repo_id: str, remote: Remote, domain: str) -> None:
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
    """The `loradock.json` already at `revision`, or None when there is none or it is unreadable."""
    path = Downloader(api, repo_id, revision, revision).optional(METADATA_FILE, cap=MAX_METADATA_BYTES)
    if path is None:
        return None
    try:
        metadata = read_metadata(path, repo_id)
    except HubRecordError:
        return None
    return metadata if isinstance(metadata.get("record", {}), dict) else None


def _push_version(
    registry: Registry, api: HfApi, repo_id: str, version: AdapterVersion, remote: Remote, license: str | None
) -> PushedVersion:
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
        branch = "main" if version.number > remote.newest_version() else f"{STAGING_PREFIX}{tag}"
        if branch != "main":
            retrying("create branch", lambda: api.create_branch(repo_id, branch=branch, revision="main", exist_ok=True))
        commit = retrying(
            "upload",
            lambda: api.upload_folder(
                repo_id=repo_id,
                folder_path=stage,
                revision=branch,
                delete_patterns=[f"{PLOTS_DIR}/*"],
                commit_message=f"{version.ref} ({version.sha256[:12]})",
                commit_description=f"loradock version {version.ref}, tagged {tag}.",
            ),
        )
    sha = commit.oid
    retrying(
        "create tag", lambda: api.create_tag(repo_id, tag=tag, revision=sha, tag_message=version.ref, exist_ok=True)
    )
    if branch != "main":
        retrying("delete branch", lambda: api.delete_branch(repo_id, branch=branch))
    remote.tags[tag] = sha
    log.info("pushed %s to %s@%s (%s)", version.ref, repo_id, tag, sha[:12])
    return PushedVersion(version.ref, tag, sha, uploaded=True)


def _stage(registry: Registry, version: AdapterVersion, repo_id: str, folder: Path, license: str | None) -> Path:
    """Write the repo's files for `version` into `folder`."""
    source = registry.path(version.ref)
    for name in version.files:
        shutil.copyfile(source / name, folder / name)
    artifacts, plots = _stage_plots(registry, version, folder)
    card = render_card(version, repo_id, plots, **({"license": license} if license else {}))
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    write_metadata(folder, version, artifacts)
    return folder


def _stage_plots(registry: Registry, version: AdapterVersion, folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Copy the version's plots under `plots/`: their record entries, and the paths the card shows."""
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
    return artifacts, plots


def _mirror_aliases(
    registry: Registry, api: HfApi, repo_id: str, domain: str, remote: Remote
) -> tuple[dict[str, str], list[str]]:
    """Point a branch per local alias at its version's tag, when that version is on the Hub."""
    moved: dict[str, str] = {}
    skipped: list[str] = []
    for row in registry.aliases(domain):
        alias, tag = row["name"], f"v{row['number']}"
        if alias == "main" or VERSION_TAG.match(alias) or alias.startswith(STAGING_PREFIX):
            log.warning("alias %r would clash with a Hub ref name; not mirrored", alias)
            skipped.append(alias)
            continue
        target = remote.tags.get(tag)
        if target is None or remote.branches.get(alias) == target:
            continue
        if alias in remote.branches:
            retrying("move alias", functools.partial(api.delete_branch, repo_id, branch=alias))
        retrying(
            "set alias", functools.partial(api.create_branch, repo_id, branch=alias, revision=target, exist_ok=True)
        )
        remote.branches[alias] = target
        moved[alias] = tag
    return moved, skipped

"""The fake Hub speaks the protocol as huggingface_hub expects it (so the push/pull tests mean something)."""

from __future__ import annotations

import hashlib

import pytest

pytest_plugins = ["tests.hub_server"]  # the fake Hub and its fixtures


def test_protocol_details_the_client_relies_on(hub, tmp_path):
    from huggingface_hub import (
        CommitOperationAdd,
        HfApi,
        get_hf_file_metadata,
        hf_hub_url,
    )
    from huggingface_hub.errors import (
        HfHubHTTPError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.utils import get_session

    api = HfApi()
    url = api.create_repo("alice/proto")
    assert api.create_repo("alice/proto", exist_ok=True) == url  # the 409 answer carries the url
    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo("alice/proto")
    assert conflict.value.response.status_code == 409

    weights = bytes(range(256)) * 8
    add = [CommitOperationAdd("a.json", b'{"a": 1}'), CommitOperationAdd("w.safetensors", weights)]
    commit = api.create_commit("alice/proto", add, commit_message="add")
    assert [op._upload_mode for op in add] == ["regular", "lfs"]  # preupload answered both modes
    assert hub.count("PUT", r"^/lfs-objects/") == 1  # only the LFS file went through the batch API's PUT

    tree = {f.path: f for f in api.list_repo_tree("alice/proto", recursive=True)}
    assert tree["w.safetensors"].lfs.sha256 == hashlib.sha256(weights).hexdigest() and tree["a.json"].lfs is None
    meta = get_hf_file_metadata(hf_hub_url("alice/proto", "w.safetensors"))
    assert meta.commit_hash == commit.oid and meta.etag == hashlib.sha256(weights).hexdigest()
    assert meta.size == len(weights)
    ranged = get_session().get(hf_hub_url("alice/proto", "w.safetensors"), headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == weights[10:20]

    api.create_tag("alice/proto", tag="v1")
    api.create_branch("alice/proto", branch="production", revision="v1")
    refs = api.list_repo_refs("alice/proto")
    assert {t.name for t in refs.tags} == {"v1"} and {b.name for b in refs.branches} == {"main", "production"}
    assert api.model_info("alice/proto", revision="production").sha == commit.oid

    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/missing")
    with pytest.raises(RevisionNotFoundError):
        api.model_info("alice/proto", revision="v2")
    with pytest.raises(RemoteEntryNotFoundError):
        get_hf_file_metadata(hf_hub_url("alice/proto", "nope.json"))

"""Hostile Hub repos (issue 10): what a pull downloads, registers and refuses, and that a refused
pull leaves the registry byte for byte as it was. Every repo here is served by the local fake Hub."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import loradock.adapters.hub.transport as transport
from loradock.adapters.errors import HubIntegrityError, HubRecordError
from loradock.adapters.hub.pull import pull
from loradock.adapters.hub.push import push
from loradock.cli.main import cli
from loradock.registry import DEFAULT_BASE, Registry
from loradock.registry.errors import InvalidAdapterError

pytest_plugins = ["tests.hub_server"]  # the fake Hub and its fixtures

SOURCE = "alice/source-lora"


def snapshot(reg: Registry) -> tuple[str, list[tuple[str, int]]]:
    """The whole index as SQL, and every file under the home but the database's own."""
    dump = "\n".join(reg.conn.iterdump())
    files = sorted(
        (p.relative_to(reg.home).as_posix(), p.stat().st_size)
        for p in reg.home.rglob("*")
        if p.is_file() and not p.name.startswith("registry.db")
    )
    return dump, files


def publish(hub: Any, repo: str, files: dict[str, bytes], branches: dict[str, str] | None = None) -> None:
    """Create `repo` holding exactly `files` on main, plus branches (name -> revision)."""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi()
    api.create_repo(repo)
    api.create_commit(
        repo, [CommitOperationAdd(path, content) for path, content in files.items()], commit_message="hostile"
    )
    for name, revision in (branches or {}).items():
        api.create_branch(repo, branch=name, revision=revision)


@pytest.fixture
def hostile(hub, sentiment_versions) -> Callable[..., str]:
    """Make a repo from a real push of sentiment@2, with its loradock.json and files edited."""
    push(sentiment_versions, "sentiment@2", SOURCE)
    source = {p: c for p, c in hub.files(SOURCE).items() if p != ".gitattributes"}

    def make(repo: str, edit: Callable[[dict, dict], None]) -> str:
        files = dict(source)
        metadata = json.loads(files.pop("loradock.json"))
        edit(metadata, files)
        files["loradock.json"] = json.dumps(metadata).encode()
        publish(hub, repo, files)
        return repo

    return make


def test_only_adapter_files_and_plots_are_pulled_planted_artifacts_are_ignored(hub, hostile, tmp_path, caplog):
    def plant(meta: dict, files: dict) -> None:
        files["merged/config.json"] = b'{"architectures": ["Evil"]}'
        files["merged/pytorch_model.bin"] = b"\x80\x04pickled"
        files["eval.jsonl"] = b'{"text": "planted", "label": "positive"}\n'
        for name in ("merged/config.json", "merged/pytorch_model.bin", "eval.jsonl"):
            meta["files"][name] = {
                "sha256": __import__("hashlib").sha256(files[name]).hexdigest(),
                "size": len(files[name]),
            }
        meta["artifacts"] += [
            {
                "kind": "merged",
                "name": "fp32",
                "meta": {"max_abs_diff": 0},
                "files": {"config.json": "merged/config.json", "pytorch_model.bin": "merged/pytorch_model.bin"},
            },
            {"kind": "data", "name": "eval", "meta": {}, "files": {"eval.jsonl": "eval.jsonl"}},
            {
                "kind": "onnx",
                "name": "fp32-opset17",
                "meta": {"gate": {"applied": True, "accuracy_drop": 0}},
                "files": {"model.onnx": "eval.jsonl"},
            },
        ]

    repo = hostile("alice/planted", plant)
    fresh = Registry(tmp_path / "fresh")
    report = pull(fresh, repo)
    kinds = {(a.kind, a.name) for a in fresh.artifacts(report.version.ref)}
    assert kinds == {("plot", "loss")}  # what push sends, nothing else
    assert report.version.provenance["ignored"]["ignored_artifacts"] == [
        "merged/fp32",
        "data/eval",
        "onnx/fp32-opset17",
    ]
    assert "does not pull" in caplog.text
    for name in ("merged/pytorch_model.bin", "merged/config.json", "eval.jsonl"):
        assert hub.count("GET", f"/resolve/[0-9a-f]{{40}}/{name}$") == 0, name  # never downloaded


def test_pull_never_moves_a_local_alias_only_alias_does(hub, sentiment_versions):
    from huggingface_hub import HfApi

    # A third party's repo whose `production` branch holds content equal to our older @1.
    push(sentiment_versions, "sentiment@1", "alice/hijack")
    HfApi().create_branch("alice/hijack", branch="production", revision="v1")
    assert sentiment_versions.resolve("sentiment@production").number == 2
    before = sentiment_versions.last_event_id()

    report = pull(sentiment_versions, "alice/hijack@production")
    assert report.version.number == 1 and not report.created
    assert report.remote_branches == ["production"] and report.aliases == []
    assert sentiment_versions.resolve("sentiment@production").number == 2  # untouched
    assert sentiment_versions.last_event_id() == before  # nothing at all was written

    out = CliRunner().invoke(cli, ["pull", "alice/hijack@production"], catch_exceptions=False)
    assert out.exit_code == 0 and "Remote branches at this commit: production" in out.output
    assert "Alias sentiment@production" not in out.output
    assert sentiment_versions.resolve("sentiment@production").number == 2

    moved = CliRunner().invoke(
        cli, ["pull", "alice/hijack@production", "--alias", "production", "--json"], catch_exceptions=False
    )
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["aliases"] == ["production"]
    assert sentiment_versions.resolve("sentiment@production").number == 1  # explicitly asked for


def test_pulled_version_records_remote_branches_in_provenance(hub, sentiment_versions, tmp_path):
    push(sentiment_versions, "sentiment@2", "alice/branches")
    fresh = Registry(tmp_path / "fresh")
    version = pull(fresh, "alice/branches@v2").version
    assert version.provenance["remote_branches"] == ["production"]
    assert fresh.aliases("sentiment") == []


@pytest.mark.parametrize("case", ["labels-vs-head", "escape-artifact", "escape-source", "bad-domain", "size-lie"])
def test_a_refused_pull_leaves_the_registry_byte_for_byte_unchanged(hub, hostile, sentiment_versions, case):
    edits: dict[str, Callable[[dict, dict], None]] = {
        # A new domain whose labels (3) disagree with the adapter's 2-output head.
        "labels-vs-head": lambda m, f: m["record"].update(domain="legal", labels=["a", "b", "c"]),
        "escape-artifact": lambda m, f: m["artifacts"][0].update(files={"../../escape.png": "plots/loss.png"}),
        "escape-source": lambda m, f: m["artifacts"][0].update(files={"loss.png": "plots/../../escape.png"}),
        "bad-domain": lambda m, f: m["record"].update(domain="sentiment\n"),
        "size-lie": lambda m, f: m["files"]["plots/loss.png"].update(size=3),
    }
    repo = hostile(f"alice/refused-{case}", edits[case])
    reg = sentiment_versions
    before = snapshot(reg)
    result = CliRunner().invoke(cli, ["pull", repo, "--alias", "production"], catch_exceptions=False)
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    assert snapshot(reg) == before
    assert reg.resolve("sentiment@production").number == 2


def test_traversal_names_are_a_clear_invalid_input_error(hub, hostile, tmp_path, monkeypatch):
    repo = hostile(
        "alice/traversal", lambda m, f: m["artifacts"][0].update(files={"../../escape.png": "plots/loss.png"})
    )
    monkeypatch.setenv("ADAPTERS_HOME", str(tmp_path / "fresh"))
    result = CliRunner().invoke(cli, ["pull", repo], catch_exceptions=False)
    assert result.exit_code == 5 and "'../../escape.png'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "escape.png").exists() and not (tmp_path / "fresh" / "escape.png").exists()


def test_a_size_that_differs_from_the_record_is_refused_before_downloading(hub, hostile, tmp_path):
    big = b"\0" * (3 << 20)

    def lie(meta: dict, files: dict) -> None:
        files["adapter_model.safetensors"] = big  # 3 MB on the Hub, recorded as 10 bytes
        meta["files"]["adapter_model.safetensors"]["size"] = 10

    repo = hostile("alice/oversized", lie)
    fresh = Registry(tmp_path / "fresh")
    with pytest.raises(
        HubIntegrityError,
        match=r"adapter_model\.safetensors .* is 3145728 bytes on the Hub but "
        r"loradock\.json records 10",
    ):
        pull(fresh, repo)
    assert hub.count("GET", r"/resolve/[0-9a-f]{40}/adapter_model\.safetensors$") == 0
    assert fresh.versions() == [] and fresh.last_event_id() == 0


def test_sizes_are_capped_and_unused_files_never_downloaded(hub, hostile, tmp_path, monkeypatch):
    import hashlib

    junk = b"x" * (1 << 20)

    def add_junk(meta: dict, files: dict) -> None:
        files["junk.bin"] = junk
        meta["files"]["junk.bin"] = {"sha256": hashlib.sha256(junk).hexdigest(), "size": len(junk)}

    repo = hostile("alice/junk", add_junk)
    fresh = Registry(tmp_path / "fresh")
    assert pull(fresh, repo).created
    assert hub.count("GET", r"/resolve/[0-9a-f]{40}/junk\.bin$") == 0

    monkeypatch.setattr(transport, "MAX_FILE_BYTES", 1000)
    other = Registry(tmp_path / "other")
    with pytest.raises(HubRecordError, match=r"over the 1000-byte limit"):
        pull(other, repo)
    assert other.versions() == []


def test_base_from_a_record_is_never_a_local_path(hub, hostile, tmp_path):
    def path_base(meta: dict, files: dict) -> None:
        meta["record"].update(
            domain="legal2", labels=["negative", "positive"], base_model="/etc", base_fingerprint=None
        )

    repo = hostile("alice/etc-base", path_base)
    fresh = Registry(tmp_path / "fresh")
    before = snapshot(fresh)
    with pytest.raises(HubRecordError, match=r"base_model '/etc' is not a Hub model id"):
        pull(fresh, repo)
    assert snapshot(fresh) == before and "legal2" not in fresh.domain_names()


def test_missing_fingerprint_is_computed_when_the_base_is_local_else_unverified(hub, hostile, tmp_path):
    from loradock.adapters.base import base_info

    local = hostile("alice/no-fp", lambda m, f: m["record"].update(base_fingerprint=None))
    fresh = Registry(tmp_path / "fresh")
    version = pull(fresh, local).version
    assert version.base_model == DEFAULT_BASE
    assert version.base_fingerprint == base_info(DEFAULT_BASE)["base_fingerprint"]

    absent = hostile(
        "alice/absent-base", lambda m, f: m["record"].update(base_fingerprint=None, base_model="nobody/absent-base")
    )
    other = Registry(tmp_path / "other")
    report = pull(other, absent)
    assert report.unverified and not report.version.base_fingerprint  # contract 2: unverified
    assert report.version.base_model == "nobody/absent-base"


def test_lora_shapes_that_do_not_fit_the_local_base_are_refused_on_pull(hub, registry, tmp_path):
    from huggingface_hub import HfApi

    from tests.synthetic_adapters import write_adapter

    folder = write_adapter(tmp_path / "narrow", hidden=8, config_overrides={"base_model_name_or_path": DEFAULT_BASE})
    HfApi().create_repo("alice/narrow")
    HfApi().upload_folder(repo_id="alice/narrow", folder_path=folder)
    before = snapshot(registry)
    with pytest.raises(InvalidAdapterError, match=r"map 8 -> 8 features, but layer .* maps 384 -> 384"):
        pull(registry, "alice/narrow", domain="sentiment")
    assert snapshot(registry) == before


def test_push_and_pull_speak_json(hub, sentiment_versions, tmp_path, monkeypatch):
    pushed = CliRunner().invoke(
        cli, ["push", "sentiment@2", "--repo", "alice/json-lora", "--json"], catch_exceptions=False
    )
    assert pushed.exit_code == 0, pushed.output
    assert json.loads(pushed.stdout)["versions"][0]["tag"] == "v2"
    monkeypatch.setenv("ADAPTERS_HOME", str(tmp_path / "fresh"))
    pulled = CliRunner().invoke(cli, ["pull", "alice/json-lora", "--json"], catch_exceptions=False)
    data = json.loads(pulled.stdout)
    assert data["created"] and data["version"]["ref"] == "sentiment@1" and data["remote_branches"] == ["production"]
    assert Path(tmp_path / "fresh" / "registry.db").is_file()


def test_hostile_branch_names_and_text_never_reach_the_terminal(hub, hostile, tmp_path, monkeypatch):
    from huggingface_hub import HfApi

    repo = hostile(
        "alice/escapes",
        lambda m, f: m["record"].update(description="ok\x1b[2J\x1b]0;pwned\x07 text", tags=["demo\x1b[31m"]),
    )
    for branch in ("evil\x1b[31m", "line\nbreak", "staging"):
        HfApi().create_branch(repo, branch=branch, revision="main")
    monkeypatch.setenv("ADAPTERS_HOME", str(tmp_path / "fresh"))
    result = CliRunner().invoke(cli, ["pull", repo], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "Remote branches at this commit: staging " in result.output
    version = Registry(tmp_path / "fresh").resolve("sentiment@1")
    assert version.provenance["remote_branches"] == ["staging"]
    assert version.description == "ok[2J]0;pwned text" and version.tags == ["demo[31m"]


# -- issue 22 item 1: pull reads only regular files inside its own cache folder -------------------


def _plain_repo(hub: Any, repo: str, tmp_path: Path, config: dict | None = None) -> None:
    from tests.synthetic_adapters import write_adapter

    folder = write_adapter(tmp_path / "plain-src", config_overrides=config)
    files = {n: (folder / n).read_bytes() for n in ("adapter_config.json", "adapter_model.safetensors")}
    publish(hub, repo, {**files, "README.md": b"---\ntags: [sentiment]\n---\nA plain adapter.\n"})


def test_an_etag_naming_a_local_file_is_refused_before_download(hub, registry, tmp_path, monkeypatch):
    """huggingface_hub names cache files `blobs/<ETag>` unchecked: an ETag that is a path would make
    the pull read (or write) that file. The pull refuses the answer instead."""
    from tests.hub_server import _Handler

    secret = tmp_path / "secret.txt"
    secret.write_text("hf_SECRETcredential0123456789")
    _plain_repo(hub, "alice/etag", tmp_path)
    send = _Handler._send

    def hostile_send(self, status, body=b"", headers=None, **kwargs):
        if headers and "ETag" in headers and self.path.endswith("/README.md"):
            headers = {**headers, "ETag": f'"{secret}"'}
        return send(self, status, body, headers, **kwargs)

    monkeypatch.setattr(_Handler, "_send", hostile_send)
    before = snapshot(registry)
    with pytest.raises(HubIntegrityError, match="outside the download cache"):
        pull(registry, "alice/etag", domain="sentiment")
    assert snapshot(registry) == before
    assert secret.read_text() == "hf_SECRETcredential0123456789"


def test_a_cache_pointer_that_links_outside_the_cache_is_refused(hub, registry, tmp_path):
    from huggingface_hub import constants

    _plain_repo(hub, "alice/linked", tmp_path)
    pull(registry, "alice/linked", domain="sentiment")  # the files are in the cache now
    pointers = list(Path(constants.HF_HUB_CACHE).glob("models--alice--linked/snapshots/*/adapter_config.json"))
    assert len(pointers) == 1
    secret = tmp_path / "secret.json"
    secret.write_text('{"token": "hf_SECRETcredential0123456789"}')
    pointers[0].unlink()
    pointers[0].symlink_to(secret)  # what a planted link (or a hostile ETag) leaves behind
    before = snapshot(registry)
    with pytest.raises(HubIntegrityError, match="outside the download cache"):
        pull(registry, "alice/linked", domain="sentiment")
    assert snapshot(registry) == before


def test_pull_refuses_an_exponential_target_modules_regex(hub, registry, tmp_path):
    """Issue 22 item 2 on the pull side: the same bounded validation as register, before any write."""
    _plain_repo(hub, "alice/regex", tmp_path, {"target_modules": "(.*)+x"})
    before = snapshot(registry)
    with pytest.raises(InvalidAdapterError, match="nested repeats"):
        pull(registry, "alice/regex", domain="sentiment")
    assert snapshot(registry) == before

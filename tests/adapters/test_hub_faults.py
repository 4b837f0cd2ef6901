"""Integrity and faults: corrupt files, dropped connections, missing repo/revision/file, token hygiene."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

import loradock.adapters.hub.transport as transport
from loradock.adapters.errors import (
    BaseModelError,
    HubAuthError,
    HubFileNotFoundError,
    HubIntegrityError,
    HubNetworkError,
    HubRepoNotFoundError,
    HubRevisionNotFoundError,
)
from loradock.adapters.hub.pull import pull
from loradock.adapters.hub.push import push
from loradock.cli.main import cli
from loradock.registry import Registry, VersionInfo

pytest_plugins = ["tests.hub_server"]  # the fake Hub and its fixtures

REPO = "alice/sentiment-lora"


@pytest.fixture
def no_wait(fast_retries, monkeypatch):
    monkeypatch.setattr(transport, "RETRY_WAIT_S", 0.0)


def _state(reg: Registry) -> tuple:
    return (
        reg.last_event_id(),
        [v.sha256 for v in reg.versions()],
        sorted(p.name for p in (reg.home / "blobs").rglob("*")),
    )


def test_a_file_corrupted_on_the_server_is_refused(hub, sentiment_versions, tmp_path):
    push(sentiment_versions, "sentiment@2", REPO)
    hub.corrupt(REPO, "adapter_model.safetensors")
    fresh = Registry(tmp_path / "fresh")
    with pytest.raises(
        HubIntegrityError,
        match=r"adapter_model\.safetensors in alice/sentiment-lora@v2 has sha256 .* "
        r"but loradock\.json records",
    ):
        pull(fresh, f"{REPO}@v2")
    assert fresh.versions() == [] and fresh.last_event_id() == 0


def test_a_corrupt_plot_is_refused_too(hub, sentiment_versions, tmp_path):
    push(sentiment_versions, "sentiment@2", REPO)
    hub.corrupt(REPO, "plots/loss.png")
    with pytest.raises(HubIntegrityError, match=r"plots/loss\.png"):
        pull(Registry(tmp_path / "fresh"), REPO)


def test_dropped_connection_mid_upload_is_retried_by_the_client(hub, sentiment_versions, no_wait):
    hub.drop("PUT", r"^/lfs-objects/", times=1)
    report = push(sentiment_versions, "sentiment@2", REPO)
    assert report.versions[0].uploaded
    assert hub.count("PUT", r"^/lfs-objects/") == 3  # two LFS files (weights, plot), one of them sent twice
    assert "v2" in hub.refs(REPO)[1]


def test_upload_that_keeps_failing_changes_nothing_and_a_retry_completes(hub, sentiment_versions, no_wait):
    before = _state(sentiment_versions)
    hub.drop("POST", r"/commit/main$", times=transport.RETRIES)
    with pytest.raises(
        HubNetworkError,
        match=r"Network error while trying to push to alice/sentiment-lora .*"
        r"Run the same command again",
    ):
        push(sentiment_versions, "sentiment@2", REPO)
    assert _state(sentiment_versions) == before
    branches, tags = hub.refs(REPO)
    assert tags == {} and set(branches) == {"main"}  # no half-made version on the Hub either
    lfs_puts = hub.count("PUT", r"^/lfs-objects/")

    report = push(sentiment_versions, "sentiment@2", REPO)
    assert report.versions[0].uploaded and "v2" in hub.refs(REPO)[1]
    assert hub.count("PUT", r"^/lfs-objects/") == lfs_puts  # uploaded bytes were not sent again
    assert _state(sentiment_versions) == before


def test_download_that_keeps_failing_registers_nothing_and_a_retry_completes(
    hub, sentiment_versions, no_wait, tmp_path
):
    push(sentiment_versions, "sentiment@2", REPO)
    fresh = Registry(tmp_path / "fresh")
    hub.drop("GET", r"/resolve/[0-9a-f]{40}/adapter_model\.safetensors$", times=100)
    with pytest.raises(HubNetworkError, match="nothing was registered locally"):
        pull(fresh, REPO)
    assert fresh.versions() == [] and fresh.last_event_id() == 0
    hub.clear_faults()
    assert pull(fresh, REPO).version.ref == "sentiment@1"


def test_missing_repo_revision_and_file_each_say_what_and_what_next(hub, sentiment_versions, tmp_path):
    from huggingface_hub import HfApi

    fresh = Registry(tmp_path / "fresh")
    with pytest.raises(
        HubRepoNotFoundError, match=r"Hub repo 'alice/nope' not found on http://127\.0\.0\.1:\d+ .*HF_TOKEN"
    ):
        pull(fresh, "alice/nope")
    push(sentiment_versions, "sentiment@2", REPO)
    with pytest.raises(
        HubRevisionNotFoundError,
        match=r"Revision 'v9' not found in alice/sentiment-lora\. Tags: v2; "
        r"branches: main, production\. E\.g\. adapters pull "
        r"alice/sentiment-lora@v2",
    ):
        pull(fresh, f"{REPO}@9")
    HfApi().delete_file("adapter_model.safetensors", REPO)
    with pytest.raises(
        HubFileNotFoundError, match=r"alice/sentiment-lora@main has no file 'adapter_model\.safetensors'"
    ):
        pull(fresh, REPO)
    assert fresh.versions() == []

    out = CliRunner().invoke(cli, ["pull", "alice/nope@v1"], catch_exceptions=False)
    assert out.exit_code == 3 and "Error: Hub repo 'alice/nope' not found" in out.output  # not found
    assert "Traceback" not in out.output
    bad = CliRunner().invoke(cli, ["pull", "not-a-repo"], catch_exceptions=False)
    assert bad.exit_code == 1 and "Invalid Hub repo 'not-a-repo': use OWNER/NAME" in bad.output


def test_a_base_with_another_fingerprint_is_refused_unless_forced(hub, registry, make_peft_folder, tmp_path):
    registry.register(
        "sentiment",
        make_peft_folder(seed=0),
        VersionInfo(base_model="sentence-transformers/all-MiniLM-L6-v2", base_fingerprint="sha256:" + "0" * 64),
    )
    push(registry, "sentiment@1", REPO)
    fresh = Registry(tmp_path / "fresh")
    with pytest.raises(BaseModelError, match=r"fingerprint sha256:000000000000.*pass --force"):
        pull(fresh, REPO)
    assert fresh.versions() == [] and fresh.last_event_id() == 0
    forced = pull(fresh, REPO, force=True)
    assert forced.version.base_fingerprint == "sha256:" + "0" * 64


def test_push_without_a_token_names_the_fix(hub, sentiment_versions, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubAuthError, match=r"set HF_TOKEN or run 'hf auth login'"):
        push(sentiment_versions, "sentiment@2", REPO)


def test_offline_mode_is_named_not_retried(hub, sentiment_versions, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubNetworkError, match="HF_HUB_OFFLINE is set"):
        pull(sentiment_versions, REPO)


def test_no_token_in_database_logs_or_pushed_files(hub, sentiment_versions, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    runner = CliRunner()
    pushed = runner.invoke(cli, ["push", "sentiment@2", "--repo", REPO, "--private"], catch_exceptions=False)
    monkeypatch.setenv("ADAPTERS_HOME", str(tmp_path / "fresh"))
    pulled = runner.invoke(cli, ["pull", f"{REPO}@production"], catch_exceptions=False)
    assert pushed.exit_code == 0 and pulled.exit_code == 0, pushed.output + pulled.output
    assert "alice" in hub.state.users_seen  # the token was really used, by huggingface_hub

    needle = hub.token.encode()
    for home in (sentiment_versions.home, tmp_path / "fresh"):
        stored = [p for p in Path(home).rglob("*") if p.is_file()]
        assert any(p.name == "registry.db" for p in stored)
        for path in stored:
            assert needle not in path.read_bytes(), path
    for name, content in hub.files(REPO).items():
        assert needle not in content, name
    assert hub.token not in pushed.output + pulled.output
    assert hub.token not in caplog.text and "hf_loradock" not in caplog.text

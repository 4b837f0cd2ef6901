"""Push to and pull from a Hub (the local fake in hub_server.py, driven by the real huggingface_hub client)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

pytest_plugins = ["tests.hub_server"]  # the fake Hub and its fixtures

from loradock.adapters.hub.pull import pull
from loradock.adapters.hub.push import push
from loradock.cli.main import cli
from loradock.registry import Registry

REPO = "alice/sentiment-lora"
_SAME = (
    "sha256",
    "files",
    "size_bytes",
    "labels",
    "task",
    "base_model",
    "base_revision",
    "base_fingerprint",
    "peft_config",
    "data",
    "metrics",
    "train_args",
    "description",
    "tags",
    "extra",
    "kind",
)


def _front_matter(readme: bytes) -> dict:
    return yaml.safe_load(readme.decode().split("---", 2)[1])


@pytest.mark.slow
def test_round_trip_keeps_files_hashes_metadata_alias_and_logits(hub, sentiment_versions, tmp_path):
    import torch

    from loradock.adapters.loading import load_version

    report = push(sentiment_versions, "sentiment@2", REPO)
    assert [(v.ref, v.tag, v.uploaded) for v in report.versions] == [("sentiment@2", "v2", True)]
    assert report.aliases == {"production": "v2"}

    files = hub.files(REPO, "v2")
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "loradock.json", "plots/loss.png"} <= set(
        files
    )
    branches, tags = hub.refs(REPO)
    assert tags["v2"] == branches["production"] == branches["main"]
    card = _front_matter(files["README.md"])
    assert card["library_name"] == "peft" and card["base_model_relation"] == "adapter"
    assert card["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert card["pipeline_tag"] == "text-classification" and card["license"] == "apache-2.0"
    assert {"sentiment", "lora"} <= set(card["tags"])
    metrics = {m["type"]: m["value"] for m in card["model-index"][0]["results"][0]["metrics"]}
    assert metrics["accuracy"] == pytest.approx(0.9)
    body = files["README.md"].decode()
    assert 'PeftModel.from_pretrained(base, "alice/sentiment-lora", revision="v2")' in body
    assert "adapters pull alice/sentiment-lora@v2" in body and "plots/loss.png" in body

    here = sentiment_versions.resolve("sentiment@2")
    other = Registry(tmp_path / "elsewhere")
    pulled = pull(other, f"{REPO}@production", aliases=["production"])
    there = pulled.version
    assert pulled.created and there.ref == "sentiment@1"  # local numbers stay gapless
    for key in _SAME:
        assert getattr(there, key) == getattr(here, key), key
    assert "production" in there.aliases
    assert there.provenance["hub_repo"] == REPO and there.provenance["remote_ref"] == "v2"
    assert there.provenance["hub_revision"] == "production"
    assert there.provenance["commit_sha"] == branches["production"]
    assert there.provenance["origin"]["ref"] == "sentiment@2"
    [plot] = other.artifacts(there.ref, kind="plot")
    assert plot.name == "loss" and plot.meta == {"dpi": 72}
    assert plot.files == sentiment_versions.find_artifact("sentiment@2", "plot", "loss").files
    for name, f in there.files.items():
        assert hashlib.sha256((other.path(there.ref) / name).read_bytes()).hexdigest() == f["sha256"]

    texts = [json.loads(line)["text"] for line in Path("adapters/samples/sentiment.jsonl").read_text().splitlines()[:4]]
    logits = []
    for reg, ref in ((sentiment_versions, "sentiment@2"), (other, "sentiment@production")):
        loaded = load_version(reg, ref)
        batch = loaded.tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=64)
        with torch.no_grad():
            logits.append(loaded.model(**batch).logits)
    assert torch.equal(logits[0], logits[1])


def test_push_again_is_a_noop_and_moving_an_alias_moves_the_branch(hub, sentiment_versions):
    first = push(sentiment_versions, "sentiment@production", REPO)
    again = push(sentiment_versions, "sentiment@2", REPO)
    assert again.versions[0].uploaded is False and again.versions[0].commit_sha == first.versions[0].commit_sha
    assert again.aliases == {}
    commits = hub.count("POST", "/commit/")
    assert commits == 1

    sentiment_versions.set_alias("sentiment", "production", 1)
    older = push(sentiment_versions, "sentiment@1", REPO)
    branches, tags = hub.refs(REPO)
    assert older.versions[0].uploaded and older.aliases == {"production": "v1"}
    assert branches["production"] == tags["v1"] != tags["v2"]
    assert branches["main"] == tags["v2"]  # main never goes back to an older version
    assert set(branches) == {"main", "production"}  # the staging branch is gone
    assert json.loads(hub.file(REPO, "loradock.json", "v1"))["record"]["ref"] == "sentiment@1"
    assert "plots/loss.png" not in hub.files(REPO, "v1")  # v1 has no plot; v2's is not carried over


def test_cli_push_all_versions_then_pull_twice_registers_once(hub, sentiment_versions, tmp_path, monkeypatch):
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["push", "sentiment", "--repo", REPO, "--all-versions", "--private", "--license", "mit"],
        catch_exceptions=False,
    )
    assert out.exit_code == 0, out.output
    assert f"Pushed sentiment@1 to {REPO}@v1" in out.output and f"Pushed sentiment@2 to {REPO}@v2" in out.output
    assert f"Alias production -> {REPO}@v2" in out.output
    assert hub.state.repos[REPO].private
    assert _front_matter(hub.file(REPO, "README.md", "v1"))["license"] == "mit"

    again = runner.invoke(cli, ["push", "sentiment@2", "--repo", REPO], catch_exceptions=False)
    assert "already on the Hub" in again.output and "nothing uploaded" in again.output

    monkeypatch.setenv("ADAPTERS_HOME", str(tmp_path / "fresh"))
    first = runner.invoke(cli, ["pull", f"{REPO}@1"], catch_exceptions=False)
    assert first.exit_code == 0 and f"Pulled {REPO}@v1" in first.output and "as sentiment@1" in first.output
    second = runner.invoke(cli, ["pull", f"{REPO}@v1"], catch_exceptions=False)
    assert "already registered as sentiment@1" in second.output
    newest = runner.invoke(cli, ["pull", REPO], catch_exceptions=False)  # main = v2
    assert "as sentiment@2" in newest.output and "Alias sentiment@production" not in newest.output
    assert "Remote branches at this commit: production" in newest.output  # shown, never applied
    moved = runner.invoke(cli, ["pull", f"{REPO}@production", "--alias", "production"], catch_exceptions=False)
    assert "already registered as sentiment@2" in moved.output
    assert "Alias sentiment@production -> sentiment@2" in moved.output
    fresh = Registry(tmp_path / "fresh")
    assert [v.number for v in fresh.versions("sentiment")] == [2, 1]
    assert fresh.resolve("sentiment@2").parent is None  # v2 had no parent recorded


def test_push_refuses_another_domain_or_different_content_under_the_same_tag(
    hub, sentiment_versions, make_peft_folder, tmp_path
):
    from loradock.adapters.errors import HubConflictError

    push(sentiment_versions, "sentiment@2", REPO)
    other = Registry(tmp_path / "other")
    other.register("sentiment", make_peft_folder(seed=5))
    other.register("sentiment", make_peft_folder(seed=6))
    with pytest.raises(HubConflictError, match="v2 holds different content"):
        push(other, "sentiment@2", REPO)
    other.register("education", make_peft_folder(labels=("history", "language", "math", "science")))
    with pytest.raises(HubConflictError, match="holds domain 'sentiment', not 'education'"):
        push(other, "education@1", REPO)


def test_a_user_domain_travels_with_its_version(hub, registry, make_peft_folder, tmp_path):
    from loradock.registry import Domain

    registry.add_domain(Domain(name="legal", labels=("contract", "tort", "criminal")))
    registry.register("legal", make_peft_folder(labels=("contract", "tort", "criminal")), aliases=["staging"])
    push(registry, "legal@staging", "alice/legal-lora")
    fresh = Registry(tmp_path / "fresh")
    report = pull(fresh, "alice/legal-lora@staging")
    pulled = report.version
    assert fresh.domain("legal").labels == ("contract", "tort", "criminal")
    assert pulled.ref == "legal@1" and "staging" not in pulled.aliases  # pull never moves a local alias
    assert report.remote_branches == ["staging"] and pulled.provenance["remote_branches"] == ["staging"]

"""Interop both ways: plain PEFT loads what loradock pushed; loradock pulls what plain PEFT/huggingface_hub pushed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loradock.adapters.errors import HubError
from loradock.adapters.hub.pull import pull
from loradock.adapters.hub.push import push
from loradock.registry import DEFAULT_BASE, content_hash

pytest_plugins = ["tests.hub_server"]  # the fake Hub and its fixtures

TEXTS = [json.loads(line)["text"] for line in Path("adapters/samples/sentiment.jsonl").read_text().splitlines()[:4]]


def _logits(model, tokenizer):
    import torch

    batch = tokenizer(TEXTS, return_tensors="pt", padding=True, truncation=True, max_length=64)
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.slow
def test_plain_peft_from_pretrained_loads_what_we_pushed(hub, sentiment_versions):
    import torch
    from peft import PeftModel

    from loradock.adapters.base import load_classifier, load_tokenizer
    from loradock.adapters.loading import load_version

    repo = "alice/sentiment-lora"
    push(sentiment_versions, "sentiment@2", repo)
    ours = load_version(sentiment_versions, "sentiment@2")
    theirs = PeftModel.from_pretrained(
        load_classifier(DEFAULT_BASE, ["negative", "positive"]), repo, revision="v2"
    ).eval()
    tokenizer = load_tokenizer(DEFAULT_BASE)
    assert torch.equal(_logits(ours.model, tokenizer), _logits(theirs, tokenizer))
    by_alias = PeftModel.from_pretrained(
        load_classifier(DEFAULT_BASE, ["negative", "positive"]), repo, revision="production"
    ).eval()
    assert torch.equal(_logits(ours.model, tokenizer), _logits(by_alias, tokenizer))


_CARD = """---
library_name: peft
base_model: sentence-transformers/all-MiniLM-L6-v2
license: mit
tags:
- sentiment
- lora
model-index:
- name: plain
  results:
  - task: {type: text-classification}
    dataset: {name: imdb, type: imdb}
    metrics:
    - {type: accuracy, value: 0.91}
---

# plain

A sentiment adapter someone trained with PEFT.
"""


def test_pull_a_repo_uploaded_with_plain_upload_folder(hub, registry, make_peft_folder, tmp_path):
    import shutil

    from huggingface_hub import HfApi

    folder = tmp_path / "saved"
    shutil.copytree(make_peft_folder(seed=3), folder)  # what save_pretrained() wrote
    (folder / "README.md").write_text(_CARD)
    repo = "alice/plain"
    api = HfApi()
    api.create_repo(repo)
    commit = api.upload_folder(repo_id=repo, folder_path=folder)

    report = pull(registry, repo)
    version = report.version
    assert report.created and report.inferred and version.ref == "sentiment@1"  # domain from the card's tags
    assert version.provenance["inferred"] is True and version.provenance["commit_sha"] == commit.oid
    assert version.provenance["hub_repo"] == repo
    assert version.metrics == {"accuracy": 0.91} and version.extra == {"license": "mit"}
    assert version.description == "A sentiment adapter someone trained with PEFT."
    assert version.base_model == DEFAULT_BASE and version.base_fingerprint.startswith("sha256:")
    files = {n: {"sha256": f["sha256"]} for n, f in version.files.items()}
    assert version.sha256 == content_hash(files)
    assert (registry.path(version.ref) / "adapter_model.safetensors").read_bytes() == (
        folder / "adapter_model.safetensors"
    ).read_bytes()
    assert pull(registry, repo).created is False


def test_plain_repo_without_card_tags_needs_domain(hub, registry, make_peft_folder):
    from huggingface_hub import HfApi

    repo = "alice/bare"
    api = HfApi()
    api.create_repo(repo)
    api.upload_folder(repo_id=repo, folder_path=make_peft_folder(seed=4))
    with pytest.raises(HubError, match=r"pass --domain DOMAIN.*adapters pull alice/bare --domain"):
        pull(registry, repo)
    assert registry.versions() == []
    report = pull(registry, repo, domain="sentiment")
    assert report.version.ref == "sentiment@1" and report.version.provenance["inferred"] is True

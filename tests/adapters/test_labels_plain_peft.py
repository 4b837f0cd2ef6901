"""Label names next to the weights: plain PEFT loading of `adapters path` and of a pushed repo names the labels.

SNIPPET is the README's text, run exactly as written (only the value of `path` is replaced).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.cli.main import cli
from loradock.registry import Domain, VersionInfo

pytest_plugins = ["tests.hub_server"]  # the fake Hub and its fixtures

from tests.export_support import exported  # noqa: F401  (a fixture)
from tests.readme_snippets import python_block

LABELS = ("billing", "bug", "praise")

SNIPPET = python_block("PeftModel.from_pretrained(base, path)")


@pytest.fixture
def tickets(registry, tmp_path: Path):
    """tickets@1: a LoRA folder on a tiny BERT base, written the way `adapters train` writes one."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import BertConfig, BertForSequenceClassification

    from loradock.adapters.label_config import save_label_config

    base = tmp_path / "tiny-bert"
    config = BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        architectures=["BertModel"],
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).bert.save_pretrained(str(base))  # a base as the Hub has it: BertModel
    model = BertForSequenceClassification.from_pretrained(
        str(base), num_labels=3, id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)}
    )
    peft = get_peft_model(
        model, LoraConfig(task_type=TaskType.SEQ_CLS, r=2, target_modules=["query", "value"], init_lora_weights=False)
    )
    folder = tmp_path / "adapter"
    peft.save_pretrained(str(folder))
    save_label_config(peft, folder)
    registry.add_domain(Domain(name="tickets", labels=LABELS, base_model=str(base)))
    # The record names a Hub-style id (pull refuses machine paths); the PEFT config keeps the local base.
    registry.register("tickets", folder, VersionInfo(base_model="alice/tiny-bert"))
    return peft.eval()


def run_snippet(path: str):
    scope: dict = {}
    exec(SNIPPET.replace('"tickets-folder"', repr(path), 1), scope)
    return scope["model"]


def same_logits(a, b) -> bool:
    import torch

    ids = torch.tensor([[2, 5, 9, 3], [2, 7, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]])
    with torch.no_grad():
        return torch.allclose(
            a(input_ids=ids, attention_mask=mask).logits, b.eval()(input_ids=ids, attention_mask=mask).logits, atol=1e-6
        )


def test_plain_peft_loading_of_adapters_path_names_the_labels(tickets) -> None:
    path = CliRunner().invoke(cli, ["path", "tickets@1"], catch_exceptions=False).output.strip()
    written = json.loads((Path(path) / "config.json").read_text())
    assert written["architectures"] == ["BertForSequenceClassification"]
    model = run_snippet(path)
    assert model.config.id2label == {0: "billing", 1: "bug", 2: "praise"}
    assert same_logits(tickets, model)


def test_plain_peft_loading_of_a_pushed_repo_names_the_labels(tickets, registry, hub) -> None:
    from loradock.adapters.hub.pull import pull
    from loradock.adapters.hub.push import push

    push(registry, "tickets@1", "alice/tickets-lora")
    model = run_snippet("alice/tickets-lora")
    assert model.config.id2label == {0: "billing", 1: "bug", 2: "praise"}
    assert same_logits(tickets, model)
    # and the label file travels back with the version, hash-checked
    registry.remove("tickets@1")
    pulled = pull(registry, "alice/tickets-lora").version
    assert "config.json" in pulled.files and pulled.sha256 == registry.versions("tickets")[0].sha256


def test_a_config_whose_labels_disagree_is_refused(tickets, registry, tmp_path) -> None:
    from loradock.registry.errors import InvalidAdapterError

    folder = Path(CliRunner().invoke(cli, ["path", "tickets@1"], catch_exceptions=False).output.strip())
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (bad / name).write_bytes((folder / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b"}
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidAdapterError, match="names 2 labels but the domain has 3"):
        registry.register("tickets", bad)


@pytest.mark.slow
def test_onnx_export_config_names_the_classifier_and_labels(exported) -> None:
    for export in (exported.fp32, exported.int8):
        config = json.loads((export.out / "config.json").read_text())
        assert config["architectures"] == ["BertForSequenceClassification"]
        assert list(config["id2label"].values()) == list(exported.version.labels)

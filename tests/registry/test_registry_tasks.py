"""Issue 24 item 2: domains declare a task; a version records it; an adapter of the other task is refused.

The PEFT folders here are written with numpy (the file format, not a model): real
PEFT folders of both tasks are tested in tests/adapters/test_generation_train.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file

from loradock.registry import (
    DEFAULT_GENERATION_BASE,
    GENERATION,
    Domain,
    InvalidAdapterError,
    InvalidNameError,
    task_name,
)
from loradock.registry.adapter_config import read_adapter_config
from loradock.registry.domains import GENERATION_RECIPE
from loradock.registry.errors import TaskMismatchError
from tests.synthetic_adapters import write_adapter


def write_causal_adapter(folder: Path, r: int = 4, hidden: int = 8, **overrides: object) -> Path:
    """A Llama-style CAUSAL_LM LoRA folder on q_proj/v_proj: no head, as PEFT saves it."""
    rng = np.random.default_rng(0)
    tensors = {}
    for i in range(2):
        for module in ("q_proj", "v_proj"):
            prefix = f"base_model.model.model.layers.{i}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((r, hidden)).astype(np.float32)
            tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((hidden, r)).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": r,
        "lora_alpha": 16,
        "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": "tiny-llama",
        **overrides,
    }
    (folder / "adapter_config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("generation", "text-generation"),
        ("text-generation", "text-generation"),
        ("classification", "text-classification"),
        ("text-classification", "text-classification"),
    ],
)
def test_task_names_short_and_hugging_face_store_the_hugging_face_name(given, stored):
    assert task_name(given) == stored


def test_an_unknown_task_is_refused_naming_it_and_the_known_ones():
    with pytest.raises(InvalidNameError, match=r"Unknown task 'summarize'.*generation"):
        task_name("summarize")


def test_a_generation_domain_has_no_labels_and_gets_the_generation_defaults():
    domain = Domain(name="physics", labels=(), task=GENERATION)
    assert domain.base_model == DEFAULT_GENERATION_BASE
    assert domain.recipe == GENERATION_RECIPE
    assert domain.recipe.target_modules == ("q_proj", "k_proj", "v_proj", "o_proj")
    assert domain.peft_task_type == "CAUSAL_LM"
    with pytest.raises(InvalidNameError, match=r"no labels, got \['a', 'b'\].*--task classification"):
        Domain(name="physics", labels=("a", "b"), task=GENERATION)
    with pytest.raises(InvalidNameError, match="at least 2 labels"):  # classification rules unchanged
        Domain(name="legal", labels=())


def test_a_generation_domain_round_trips_through_the_registry(registry):
    registry.add_domain(Domain(name="physics", labels=(), task=GENERATION, base_model="/models/tiny"))
    domain = registry.domain("physics")
    assert (domain.task, domain.labels, domain.base_model) == (GENERATION, (), "/models/tiny")
    assert domain.recipe == GENERATION_RECIPE


def test_adapter_config_reads_causal_lm_without_a_head_and_still_asks_seq_cls_for_one(tmp_path):
    causal = read_adapter_config(write_causal_adapter(tmp_path / "causal"))
    assert causal.causal_lm and causal.head_roots == ()
    layout = causal.layout(
        [
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
            "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
        ],
        "x",
    )
    assert layout.final is None and layout.head == {}
    seq_cls = read_adapter_config(write_adapter(tmp_path / "seqcls"))
    with pytest.raises(InvalidAdapterError, match="no classification head"):
        seq_cls.layout(
            [
                "base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight",
                "base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight",
            ],
            "x",
        )
    # A CAUSAL_LM adapter carrying a classifier tensor is a stray tensor, not a head.
    with pytest.raises(InvalidAdapterError, match="cannot apply"):
        causal.layout(["base_model.model.classifier.weight"], "x")


def test_a_causal_lm_folder_registers_into_a_generation_domain_and_records_its_task(registry, tmp_path):
    registry.add_domain(Domain(name="physics", labels=(), task=GENERATION))
    version = registry.register("physics", write_causal_adapter(tmp_path / "a"))
    assert version.task == "text-generation" and version.labels == []
    assert version.peft_config["task_type"] == "CAUSAL_LM"
    assert registry.resolve("physics@latest").task == "text-generation"


def test_a_seq_cls_folder_into_a_generation_domain_is_refused_naming_both_tasks(registry, tmp_path):
    registry.add_domain(Domain(name="physics", labels=(), task=GENERATION))
    with pytest.raises(TaskMismatchError) as err:
        registry.register("physics", write_adapter(tmp_path / "cls"))
    message = str(err.value)
    assert "'SEQ_CLS'" in message and "'text-generation'" in message and "'CAUSAL_LM'" in message
    assert "--task text-classification" in message
    assert registry.versions() == []


def test_a_causal_lm_folder_into_a_classification_domain_is_refused_naming_both_tasks(registry, tmp_path):
    with pytest.raises(TaskMismatchError) as err:
        registry.register("sentiment", write_causal_adapter(tmp_path / "gen"))
    message = str(err.value)
    assert "'CAUSAL_LM'" in message and "'text-classification'" in message and "'SEQ_CLS'" in message
    assert "--task text-generation" in message
    assert registry.versions() == []


def test_a_generation_domain_needs_a_causal_lm_task_type(registry, tmp_path):
    registry.add_domain(Domain(name="physics", labels=(), task=GENERATION))
    with pytest.raises(TaskMismatchError, match=r"task_type None .*takes task_type 'CAUSAL_LM'"):
        registry.register("physics", write_causal_adapter(tmp_path / "none", task_type=None))


def test_cli_domains_add_with_a_task(isolated_home):
    from loradock.cli.main import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["domains", "add", "physics", "--task", "generation"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "text-generation domain physics on base HuggingFaceTB/SmolLM2-135M-Instruct" in result.output
    shown = runner.invoke(cli, ["domains", "show", "physics", "--json"], catch_exceptions=False)
    row = json.loads(shown.output)
    assert row["task"] == "text-generation" and row["labels"] == []
    assert row["recipe"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    listed = runner.invoke(cli, ["domains", "list"], catch_exceptions=False).output
    assert any(line.split()[:2] == ["physics", "text-generation"] for line in listed.splitlines())
    assert any(line.split()[:2] == ["medical", "text-classification"] for line in listed.splitlines())
    bad = runner.invoke(cli, ["domains", "add", "legal", "--task", "summarize"])
    assert bad.exit_code == 5 and "Unknown task 'summarize'" in bad.output
    no_labels = runner.invoke(cli, ["domains", "add", "legal"])
    assert no_labels.exit_code == 5 and "at least 2 labels" in no_labels.output
    labelled = runner.invoke(cli, ["domains", "add", "chat", "--task", "generation", "--labels", "a,b"])
    assert labelled.exit_code == 5 and "no labels" in labelled.output


def test_a_classification_domain_still_takes_other_peft_task_types_as_before(registry, tmp_path):
    # merge/export refuse TOKEN_CLS later (tests/adapters/test_merge_bad_inputs.py); register never did.
    version = registry.register(
        "sentiment", write_adapter(tmp_path / "tok", config_overrides={"task_type": "TOKEN_CLS"})
    )
    assert version.task == "text-classification"
    registry.add_domain(Domain(name="physics", labels=(), task=GENERATION))
    with pytest.raises(TaskMismatchError, match=r"'TOKEN_CLS' \(an adapter of no task loradock knows\)"):
        registry.register("physics", write_causal_adapter(tmp_path / "tokgen", task_type="TOKEN_CLS"))


def test_a_generation_domain_refuses_the_encoder_as_its_base_when_added_or_edited(isolated_home):
    from loradock.cli.main import cli
    from loradock.registry import DEFAULT_BASE, InvalidNameError

    with pytest.raises(InvalidNameError, match="is an encoder"):
        Domain(name="chat", labels=(), task=GENERATION, base_model=DEFAULT_BASE)
    runner = CliRunner()
    assert runner.invoke(cli, ["domains", "add", "physics", "--task", "generation"]).exit_code == 0
    edited = runner.invoke(cli, ["domains", "edit", "physics", "--base", DEFAULT_BASE])
    assert edited.exit_code == 5 and "is an encoder" in edited.output and "Traceback" not in edited.output
    shown = json.loads(runner.invoke(cli, ["domains", "show", "physics", "--json"]).output)
    assert shown["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"  # nothing stored changed

"""adapters/architectures.py: the "query,value" role per architecture, explicit names, heads, clear errors."""

from __future__ import annotations

import pytest

from loradock.adapters.architectures import (
    SUPPORTED,
    UnknownArchitectureError,
    head_modules,
    lora_targets,
    recorded_targets,
)


@pytest.mark.parametrize(
    ("model_type", "expected"),
    [
        ("bert", ["query", "value"]),
        ("roberta", ["query", "value"]),
        ("xlm-roberta", ["query", "value"]),
        ("electra", ["query", "value"]),
        ("distilbert", ["q_lin", "v_lin"]),
        ("deberta-v2", ["query_proj", "value_proj"]),
        ("modernbert", ["Wqkv"]),
        ("deberta", ["in_proj"]),
    ],
)
def test_the_role_maps_to_each_architectures_names(model_type: str, expected: list[str]) -> None:
    assert lora_targets({"model_type": model_type}) == expected
    assert lora_targets({"model_type": model_type}, ["query", "value"]) == expected


def test_explicit_names_pass_through_unchanged_on_any_base() -> None:
    assert lora_targets({"model_type": "distilbert"}, "q_lin,lin1") == ["q_lin", "lin1"]
    assert lora_targets({"model_type": "albert"}, ("dense",)) == ["dense"]
    assert lora_targets({"model_type": "distilbert"}, "query,key,value,out_lin") == [
        "q_lin",
        "k_lin",
        "v_lin",
        "out_lin",
    ]


def test_unknown_architecture_names_itself_and_the_option() -> None:
    with pytest.raises(UnknownArchitectureError) as info:
        lora_targets({"model_type": "albert"}, "query,value")
    assert "'albert'" in str(info.value) and "--target-modules" in str(info.value)
    assert isinstance(info.value, ValueError)  # exit code 5: invalid input
    with pytest.raises(UnknownArchitectureError, match="--target-modules"):
        lora_targets({"model_type": "bert"}, " , ")


@pytest.mark.parametrize("model_type", SUPPORTED)
def test_head_modules_are_what_transformers_adds_on_top_of_the_encoder(model_type: str) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    config = AutoConfig.for_model(model_type, vocab_size=128, pad_token_id=0)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    added = {
        name
        for name, module in model.named_children()
        if name != model.base_model_prefix and any(True for _ in module.parameters())
    }
    assert set(head_modules(config)) == added
    linears = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert set(lora_targets(config)) <= linears  # the role names modules this architecture really has


def test_an_unlisted_architecture_finds_its_head_from_its_class() -> None:
    from transformers import AlbertConfig

    assert head_modules(AlbertConfig(vocab_size=64)) == ["classifier"]


def test_show_line_says_role_and_modules() -> None:
    assert recorded_targets(["query", "value"], ["v_lin", "q_lin"]) == "query,value (role) -> q_lin, v_lin"
    assert recorded_targets(None, ["query", "value"]) == "query, value"
    assert recorded_targets(["q_lin"], ["q_lin"]) == "q_lin"


def test_registration_reads_label_count_from_the_last_head_layer_whatever_the_key_order() -> None:
    import numpy as np

    from loradock.registry.peft_files import _head_labels

    distil = {
        "base_model.model.pre_classifier.weight": np.zeros((32, 32)),
        "base_model.model.classifier.weight": np.zeros((3, 32)),
    }
    assert _head_labels(distil) == 3
    assert (
        _head_labels(
            {
                "base_model.model.classifier.dense.weight": np.zeros((32, 32)),
                "base_model.model.classifier.out_proj.weight": np.zeros((5, 32)),
            }
        )
        == 5
    )

"""Issue 23 item 3: one typed reader of adapter_config.json (registry/adapter_config.py).

What the server cannot apply is refused when it is registered or pulled, with the
message the server gives, so what registers can serve; the scaling is PEFT's."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from loradock.registry import InvalidAdapterError, Registry
from loradock.registry.adapter_config import UNSERVED_FEATURES, AdapterConfig, read_adapter_config
from tests.synthetic_adapters import write_adapter

pytest_plugins = ["tests.hub_server"]  # the fake Hub and its fixtures


def _snapshot(reg: Registry) -> tuple[str, list[str]]:
    return "\n".join(reg.conn.iterdump()), sorted(p.as_posix() for p in (reg.home / "blobs").rglob("*"))


def _serve_error(folder: Path) -> str:
    """What the server's weight reader says about `folder`, read as version sentiment@1."""
    from loradock.serving.errors import AdapterLoadError
    from loradock.serving.weights import read_adapter

    version = SimpleNamespace(ref="sentiment@1", sha256="0" * 64, labels=["negative", "positive"])
    with pytest.raises(AdapterLoadError) as err:
        read_adapter(version, folder)
    return str(err.value)


@pytest.mark.parametrize("flag", UNSERVED_FEATURES)
def test_a_feature_the_server_cannot_apply_is_refused_at_register_with_the_servers_message(registry, tmp_path, flag):
    folder = write_adapter(tmp_path / flag, config_overrides={flag: True})
    before = _snapshot(registry)
    with pytest.raises(InvalidAdapterError, match=rf"{flag}=True is a PEFT feature loradock does not serve") as err:
        registry.register("sentiment", folder)
    assert "merge_and_unload()" in str(err.value)
    assert _snapshot(registry) == before and registry.versions() == []
    # The server reads the same AdapterConfig: the same sentence, naming the version instead of a path.
    config_path = str(folder / "adapter_config.json")
    assert _serve_error(folder) == str(err.value).replace(config_path, "sentiment@1")
    assert str(tmp_path) not in _serve_error(folder)


def test_lora_bias_tensors_are_refused_at_register(registry, tmp_path):
    folder = write_adapter(tmp_path / "bias", config_overrides={"lora_bias": True})
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    tensors["base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.bias"] = np.zeros(8, np.float32)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    with pytest.raises(InvalidAdapterError, match="lora_bias=True"):
        registry.register("sentiment", folder)
    assert registry.versions() == []


def test_a_tensor_outside_the_lora_pairs_and_saved_heads_is_refused_at_register(registry, tmp_path):
    folder = write_adapter(tmp_path / "stray")
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    tensors["base_model.model.bert.pooler.dense.weight"] = np.zeros((8, 8), np.float32)  # not in modules_to_save
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    before = _snapshot(registry)
    with pytest.raises(InvalidAdapterError, match=r"bert\.pooler\.dense\.weight' the server cannot apply"):
        registry.register("sentiment", folder)
    assert _snapshot(registry) == before
    # Named in modules_to_save, the same tensor is a head layer the server loads.
    config = json.loads((folder / "adapter_config.json").read_text())
    config["modules_to_save"] = ["classifier", "bert"]
    (folder / "adapter_config.json").write_text(json.dumps(config))
    assert registry.register("sentiment", folder).ref == "sentiment@1"


def test_an_adapter_without_a_classification_head_is_refused_at_register(registry, tmp_path):
    folder = write_adapter(tmp_path / "headless")
    tensors = load_file(str(folder / "adapter_model.safetensors"))
    del tensors["base_model.model.classifier.weight"], tensors["base_model.model.classifier.bias"]
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    with pytest.raises(InvalidAdapterError, match="no classification head"):
        registry.register("sentiment", folder)
    assert registry.versions() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("modules_to_save", "classifier"),
        ("base_model_name_or_path", 7),
        ("revision", ["main"]),
        ("alpha_pattern", {"query": "x"}),
        ("use_rslora", "yes"),
        ("lora_alpha", None),
    ],
)
def test_mistyped_fields_are_refused_quoting_the_value(registry, tmp_path, field, value):
    folder = write_adapter(tmp_path / "typed", config_overrides={field: value})
    with pytest.raises(InvalidAdapterError, match=rf"{field} must .*got {value!r}".replace("[", r"\[")):
        registry.register("sentiment", folder)
    assert registry.versions() == []


def test_pull_refuses_dora_before_anything_is_written(hub, registry, tmp_path):
    from huggingface_hub import HfApi

    from loradock.adapters.hub.pull import pull

    api = HfApi()
    api.create_repo("alice/dora")
    api.upload_folder(
        repo_id="alice/dora", folder_path=write_adapter(tmp_path / "d", config_overrides={"use_dora": True})
    )
    before = _snapshot(registry)
    with pytest.raises(InvalidAdapterError, match="use_dora=True is a PEFT feature loradock does not serve"):
        pull(registry, "alice/dora", domain="sentiment")
    assert _snapshot(registry) == before


def test_scaling_per_module_is_the_one_peft_computes(tmp_path):
    """rank_pattern, alpha_pattern and rsLoRA, checked against the scale PEFT sets on each layer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(
        BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    )
    for rslora in (False, True):
        peft_config = LoraConfig(
            task_type="SEQ_CLS",
            r=4,
            lora_alpha=16,
            target_modules=["query", "value"],
            rank_pattern={"layer.1.attention.self.query": 2},
            alpha_pattern={"value": 3},
            use_rslora=rslora,
        )
        peft_model = get_peft_model(model, peft_config)
        folder = tmp_path / f"rslora-{rslora}"
        peft_model.save_pretrained(str(folder))
        config = read_adapter_config(folder)
        layers = {n: m for n, m in peft_model.named_modules() if isinstance(m, LoraLayer)}
        assert len(layers) == 4
        for name, layer in layers.items():
            module = name.removeprefix("base_model.model.")
            assert config.rank_for(module) == layer.r["default"], name
            assert config.scaling(module) == pytest.approx(layer.scaling["default"]), name
        model = peft_model.unload()


def test_the_config_is_validated_when_built_in_python_too():
    with pytest.raises(InvalidAdapterError, match=r"use_dora=True"):
        AdapterConfig(where="mine", r=4, target_modules=("query",), use_dora=True)
    with pytest.raises(InvalidAdapterError, match=r"target_modules .*is refused"):
        AdapterConfig(where="mine", r=4, target_modules="(a+)+b")
    assert AdapterConfig(where="mine", r=4, target_modules=("query",), lora_alpha=8).scaling("x.query") == 2.0

"""Every supported encoder architecture end to end, on tiny random models built from configs (no download).

For each: train two domains a few steps on a `--base DIR` folder, register, load
`adapters path` in plain PEFT, merge (parity <= 1e-4), export ONNX fp32 (parity
<= 1e-4), and serve a mixed batch over both domains (heads of different sizes)
that matches each row run alone through plain PEFT within 1e-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tests.bases_support import ARCHITECTURES, build_tiny_base
from tests.train_support import one_thread_fixture, write_keyword_csv  # noqa: F401  (fixture)

TEXTS = [
    "my invoice shows a double charge",
    "the app crashes at login again",
    "parcel lost by the courier",
    "please help",
    "refund the charge for the delivery that never came and fix the login error today",
]
DOMAINS = {"tickets": ("billing", "technical", "shipping"), "tone": ("negative", "positive")}


@dataclass
class Trained:
    name: str
    base: str
    home: Path
    registry: Any
    refs: dict[str, str]


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A tiny base of one architecture with two trained and registered domains."""
    from loradock.adapters.training.options import TrainOptions
    from loradock.adapters.training.train import train
    from loradock.registry import Registry

    name = request.param
    root = tmp_path_factory.mktemp(f"arch-{name}")
    base = str(build_tiny_base(name, root / "base"))
    home = root / "home"
    registry = Registry(home)
    refs = {}
    for domain, labels in DOMAINS.items():
        data = write_keyword_csv(root / f"{domain}.csv", rows_per_label=6, labels=labels)
        result = train(
            registry,
            domain,
            TrainOptions(
                data=str(data),
                base=base,
                epochs=1,
                lr=3e-2,
                batch_size=8,
                max_length=32,
                progress=False,
                min_accuracy=0.0,
                min_macro_f1=0.0,
            ),
        )
        refs[domain] = result.version.ref
    return Trained(name, base, home, registry, refs)


def peft_model(trained: Trained, domain: str, seed: int = 0) -> Any:
    """The version through plain transformers + PEFT, from the folder `adapters path` prints."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    from loradock.cli.main import cli

    result = CliRunner().invoke(
        cli, ["path", trained.refs[domain]], env={"ADAPTERS_HOME": str(trained.home)}, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    torch.manual_seed(seed)  # fresh random head layers: anything not saved with the adapter would differ
    base = AutoModelForSequenceClassification.from_pretrained(trained.base, num_labels=len(DOMAINS[domain]))
    return PeftModel.from_pretrained(base, result.output.strip().splitlines()[-1]).eval()


def peft_logits(trained: Trained, domain: str, texts: list[str], seed: int = 0) -> np.ndarray:
    import torch
    from transformers import AutoTokenizer

    model = peft_model(trained, domain, seed)
    tokenizer = AutoTokenizer.from_pretrained(trained.base)
    with torch.inference_mode():
        return np.stack(
            [
                model(**tokenizer(t, return_tensors="pt", truncation=True, max_length=32)).logits[0].numpy()
                for t in texts
            ]
        )


def test_roles_map_to_the_architectures_own_modules(trained: Trained) -> None:
    from transformers import AutoConfig

    from loradock.adapters.architectures import head_modules, lora_targets

    config = AutoConfig.from_pretrained(trained.base)
    version = trained.registry.resolve(trained.refs["tickets"])
    assert sorted(version.peft_config["target_modules"]) == sorted(lora_targets(config, "query,value"))
    assert set(head_modules(config)) <= set(version.peft_config["modules_to_save"])
    assert version.train_args["target_modules"] == ["query", "value"]  # the role, as asked
    from loradock.cli.main import cli

    shown = CliRunner().invoke(
        cli, ["show", version.ref], env={"ADAPTERS_HOME": str(trained.home)}, catch_exceptions=False
    )
    line = next(x for x in shown.output.splitlines() if x.startswith("targets"))
    assert line.split(None, 1)[1] == f"query,value (role) -> {', '.join(sorted(lora_targets(config)))}"


def test_path_loads_in_plain_peft_with_its_whole_head(trained: Trained) -> None:
    one, other = peft_logits(trained, "tickets", TEXTS, seed=0), peft_logits(trained, "tickets", TEXTS, seed=1)
    assert one.shape == (len(TEXTS), 3)
    assert np.abs(one - other).max() == 0.0  # every head layer came from the adapter, none from the seed


def test_merge_matches_the_adapter(trained: Trained, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from loradock.adapters.export.merge import merge_version

    result = merge_version(trained.registry, trained.refs["tickets"], tmp_path / "merged")
    model = AutoModelForSequenceClassification.from_pretrained(str(result.out)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(result.out))
    with torch.inference_mode():
        merged = np.stack(
            [
                model(**tokenizer(t, return_tensors="pt", truncation=True, max_length=32)).logits[0].numpy()
                for t in TEXTS
            ]
        )
    assert np.abs(merged - peft_logits(trained, "tickets", TEXTS)).max() <= 1e-4


def test_onnx_fp32_matches_the_adapter(trained: Trained, tmp_path: Path) -> None:
    from loradock.adapters.export.onnx_export import export_onnx
    from loradock.adapters.predict import OnnxClassifier

    result = export_onnx(trained.registry, trained.refs["tone"], tmp_path / "onnx")
    onnx = OnnxClassifier(result.out)
    got = np.stack([onnx.logits([t], max_length=32)[0] for t in TEXTS])
    assert np.abs(got - peft_logits(trained, "tone", TEXTS)).max() <= 1e-4
    batched = onnx.logits(TEXTS, max_length=32)  # padded rows too
    assert np.abs(batched - got).max() <= 1e-4


def test_mixed_batch_matches_each_row_alone_in_plain_peft(trained: Trained) -> None:
    from loradock.serving.backends.torch_backend import MultiLoraModel
    from loradock.serving.weights import read_adapter

    model = MultiLoraModel(trained.base, max_length=32)
    weights = {}
    for domain, ref in trained.refs.items():
        version = trained.registry.resolve(ref)
        weights[domain] = model.prepare(read_adapter(version, trained.registry.path(ref)))
    domains = ["tickets", "tone", "tone", "tickets", "tone"]
    out = model.run(model.encode(TEXTS), [weights[d] for d in domains])
    assert [o.shape[0] for o in out] == [len(DOMAINS[d]) for d in domains]
    for domain in DOMAINS:
        rows = [i for i, d in enumerate(domains) if d == domain]
        expected = peft_logits(trained, domain, [TEXTS[i] for i in rows])
        got = np.stack([out[i].numpy() for i in rows])
        assert np.abs(got - expected).max() <= 1e-5, (trained.name, domain)


def test_an_adapter_without_its_head_layers_is_refused_not_served_wrong(tmp_path: Path) -> None:
    """A DeBERTa adapter saved without its pooler would get the server's random one: refused."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from loradock.adapters.base import base_info, load_classifier
    from loradock.registry import Domain, Registry, VersionInfo
    from loradock.serving.backends.torch_backend import MultiLoraModel
    from loradock.serving.errors import AdapterLoadError
    from loradock.serving.weights import read_adapter

    base = str(build_tiny_base("deberta-v2", tmp_path / "base"))
    torch.manual_seed(0)
    model = get_peft_model(
        load_classifier(base, ["a", "b"]),
        LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=2,
            lora_alpha=4,
            target_modules=["query_proj", "value_proj"],
            init_lora_weights=False,
        ),
    )
    model.save_pretrained(str(tmp_path / "peft"))  # PEFT's default modules_to_save: classifier only
    with Registry(tmp_path / "home") as registry:
        registry.add_domain(Domain("old", ("a", "b"), base_model=base))
        version = registry.register(
            "old", tmp_path / "peft", VersionInfo(base_model=base, base_fingerprint=base_info(base)["base_fingerprint"])
        )
        weights = read_adapter(version, registry.path(version.ref))
    with pytest.raises(AdapterLoadError, match="pooler"):
        MultiLoraModel(base).check_modules(weights)

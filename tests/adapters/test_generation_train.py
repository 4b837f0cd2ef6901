"""Issue 24 item 4: `adapters train` on a generation domain: a CAUSAL_LM LoRA, evaluated against its base, registered.

A tiny random Llama and a few steps: what is checked is the plumbing (task, weights
that moved, metrics recorded, errors before training), not what the model learns.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from loradock.adapters.errors import DataError, NoCheckpointError, TrainingOptionsError
from loradock.adapters.generation.train import train
from loradock.adapters.training.options import TrainOptions
from loradock.registry import GENERATION, Domain
from loradock.registry.errors import TaskMismatchError
from tests.generation_support import tiny_llama_fixture, write_messages, write_prompt_completion
from tests.train_support import one_thread_fixture

__all__ = ["one_thread_fixture", "tiny_llama_fixture"]

FAST = {"epochs": 1, "batch_size": 4, "lr": 1e-2, "progress": False}


@pytest.fixture
def arith(registry, tiny_llama):
    registry.add_domain(Domain(name="arith", labels=(), task=GENERATION, base_model=tiny_llama))
    return registry


def _lora_b(folder: Path) -> dict:
    from safetensors.numpy import load_file

    return {k: v for k, v in load_file(str(folder / "adapter_model.safetensors")).items() if "lora_B" in k}


def test_train_registers_a_causal_lm_version_with_eval_losses_against_the_base(arith, tmp_path):
    data = write_messages(tmp_path / "chat.jsonl", n=12)
    result = train(arith, "arith", TrainOptions(data=str(data), alias="staging", **FAST))
    version = arith.resolve("arith@latest")
    assert version.ref == result.version.ref == "arith@1" and "staging" in version.aliases
    assert version.task == "text-generation" and version.labels == []
    assert version.peft_config["task_type"] == "CAUSAL_LM"
    assert sorted(version.peft_config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert (version.peft_config["r"], version.peft_config["alpha"]) == (8, 16)
    metrics = version.metrics
    for key in ("eval_loss", "perplexity", "base_eval_loss", "base_perplexity", "eval_tokens"):
        assert metrics[key] > 0, key
    assert metrics["eval_loss"] != metrics["base_eval_loss"]  # the adapter changes the model
    assert metrics["eval_rows"] == 2 and metrics["max_length"] == 32
    assert len(result.history["step_loss"]) == 3  # 10 rows in batches of 4, one epoch
    # LoRA's B starts at zero (PEFT's init): trained weights moved it.
    b = _lora_b(arith.path(version.ref))
    assert len(b) == 2 * 4 and all(abs(v).max() > 0 for v in b.values())
    assert {a.name for a in arith.artifacts(version.ref)} == {"loss", "metrics", "eval"}
    assert version.train_args["loop"] == "trainer" and version.data["format"] == "messages"
    assert version.base_model == str(Path(arith.domain("arith").base_model).resolve())


def test_a_registered_version_loads_with_plain_peft_on_its_base(arith, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = write_prompt_completion(tmp_path / "pc.jsonl", n=10)
    version = train(arith, "arith", TrainOptions(data=str(data), **FAST)).version
    base = AutoModelForCausalLM.from_pretrained(arith.domain("arith").base_model)
    model = PeftModel.from_pretrained(base, str(arith.path(version.ref)))
    assert model.peft_config["default"].task_type == "CAUSAL_LM"


def test_errors_come_before_any_model_loads(arith, registry, tmp_path, monkeypatch):
    import loradock.adapters.generation.train as gtrain

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(gtrain, "_build_model", no_model)
    long_rows = tmp_path / "long.jsonl"
    long_rows.write_text(
        "".join(json.dumps({"prompt": "a long prompt " * 4, "completion": "one"}) + "\n" for _ in range(4))
    )
    with pytest.raises(DataError, match="cut off by --max-length 8: the shortest prompt is 12 tokens"):
        train(arith, "arith", TrainOptions(data=str(long_rows), max_length=8, **FAST))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "completion": "y"}\n{"prompt": "x"}\n')
    with pytest.raises(DataError, match="line 2: missing key 'completion'"):
        train(arith, "arith", TrainOptions(data=str(bad), **FAST))
    with pytest.raises(TrainingOptionsError, match="--full: for classification domains only"):
        train(arith, "arith", TrainOptions(data=str(bad), full=True))
    with pytest.raises(TrainingOptionsError, match="is a text-classification domain"):
        train(registry, "sentiment", TrainOptions(data=str(bad)))
    with pytest.raises(DataError, match="no default data: pass --data"):
        train(arith, "arith", TrainOptions(**FAST))
    good = write_prompt_completion(tmp_path / "pc.jsonl")
    with pytest.raises(NoCheckpointError, match="No interrupted run of 'arith'"):
        train(arith, "arith", TrainOptions(data=str(good), resume=True, **FAST))
    assert registry.versions() == []


def test_a_seq_cls_folder_cannot_register_into_a_generation_domain(arith, make_peft_folder):
    with pytest.raises(TaskMismatchError, match=r"task_type 'SEQ_CLS' \(a text-classification adapter\)"):
        arith.register("arith", make_peft_folder())
    assert arith.versions("arith") == []


def test_a_causal_lm_version_cannot_register_into_a_classification_domain(arith, tmp_path):
    data = write_prompt_completion(tmp_path / "pc.jsonl", n=10)
    version = train(arith, "arith", TrainOptions(data=str(data), **FAST)).version
    with pytest.raises(TaskMismatchError, match=r"task_type 'CAUSAL_LM' \(a text-generation adapter\)"):
        arith.register("sentiment", arith.path(version.ref))
    assert arith.versions("sentiment") == []


def test_cli_train_on_a_generation_domain(isolated_home, tiny_llama, tmp_path):
    from loradock.cli.main import cli

    runner = CliRunner()
    added = runner.invoke(
        cli, ["domains", "add", "arith", "--task", "generation", "--base", tiny_llama], catch_exceptions=False
    )
    assert added.exit_code == 0, added.output
    csv_path = tmp_path / "qa.csv"
    csv_path.write_text("q,a\n" + "".join(f'"what is one plus {n} ?","{n}"\n' for n in ("one", "two", "three") * 3))
    args = ["train", "arith", "--data", str(csv_path), "--prompt-column", "q", "--completion-column", "a"]
    fast = ["--epochs", "1", "--batch-size", "4", "--lr", "1e-2", "--quiet"]
    result = runner.invoke(cli, [*args, *fast], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "base (adapter disabled): loss" in result.output and "adapter:" in result.output
    assert "Registered arith@1 (text-generation" in result.output
    as_json = runner.invoke(cli, [*args, *fast, "--seed", "1", "--json"], catch_exceptions=False)
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.stdout)
    assert payload["ref"] == "arith@2" and payload["task"] == "text-generation"
    assert payload["metrics"]["eval_loss"] > 0 and payload["metrics"]["base_eval_loss"] > 0
    refused = runner.invoke(cli, [*args, "--full"])
    assert refused.exit_code == 5 and "for classification domains only" in refused.output


def test_a_generation_version_is_never_loaded_as_a_classifier(arith, tmp_path):
    from loradock.adapters.errors import WrongTaskError
    from loradock.adapters.loading import load_version
    from loradock.cli.main import cli

    data = write_prompt_completion(tmp_path / "pc.jsonl", n=10)
    train(arith, "arith", TrainOptions(data=str(data), **FAST))
    with pytest.raises(WrongTaskError, match="arith@1 is a text-generation version; this command loads classifiers"):
        load_version(arith, "arith@1")
    predicted = CliRunner().invoke(cli, ["predict", "arith@1", "what is one plus one ?"])
    assert predicted.exit_code == 5 and "is a text-generation version" in predicted.output


def test_report_to_tensorboard_keeps_the_trainers_event_files_with_the_version(arith, tmp_path):
    pytest.importorskip("tensorboard")
    data = write_prompt_completion(tmp_path / "pc.jsonl", n=10)
    version = train(arith, "arith", TrainOptions(data=str(data), report_to=("tensorboard",), **FAST)).version
    logs = [a for a in arith.artifacts(version.ref) if a.kind == "logs"]
    assert len(logs) == 1 and any("tfevents" in name for name in logs[0].files)


def test_an_interrupted_run_resumes_from_its_last_epoch_checkpoint(arith, tmp_path):
    data = write_prompt_completion(tmp_path / "pc.jsonl", n=10)
    lines: list[str] = []

    def stop_at_second_epoch(line: str) -> None:
        lines.append(line)
        if line.startswith("epoch 2/"):
            raise KeyboardInterrupt

    options = {**FAST, "epochs": 2}
    with pytest.raises(KeyboardInterrupt):
        train(arith, "arith", TrainOptions(data=str(data), on_epoch=stop_at_second_epoch, **options))
    assert arith.versions("arith") == [] and len(lines) == 2
    result = train(arith, "arith", TrainOptions(data=str(data), resume=True, on_epoch=lines.append, **options))
    assert lines[-1].startswith("epoch 2/2") and len(lines) == 3  # only the second epoch ran again
    assert result.version.ref == "arith@1" and result.version.extra["resumed"] is True

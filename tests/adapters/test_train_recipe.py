"""The recipe comes from the data's shape (rows, classes), not from the domain's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from loradock.adapters.training.recipe import MAX_EPOCHS, MIN_EPOCHS, choose
from loradock.registry import PRESETS, LoraRecipe
from tests.train_support import one_thread_fixture, tiny_base_fixture  # noqa: F401  (fixtures)


def test_few_rows_get_enough_steps_and_a_higher_rate() -> None:
    small = choose(48, 3, 16)  # the 60-row case after its 20% eval split
    assert small.steps_per_epoch == 3 and small.epochs == MAX_EPOCHS and small.lr == 3e-3
    assert small.epochs * small.steps_per_epoch > 3 * 3  # more than the old 9 steps


def test_large_sets_do_not_waste_epochs() -> None:
    big = choose(20_000, 2, 16)
    assert big.epochs == MIN_EPOCHS and big.lr == 1e-3
    assert big.warmup_ratio * big.epochs * big.steps_per_epoch <= 100


def test_more_classes_get_more_steps() -> None:
    assert choose(800, 8, 16).epochs > choose(800, 4, 16).epochs > choose(800, 2, 16).epochs == 3


def test_presets_follow_the_same_rule() -> None:
    for domain in PRESETS.values():
        assert domain.recipe.lr is None and domain.recipe.epochs is None
    assert LoraRecipe().lr is None


@pytest.mark.slow
def test_sixty_rows_three_classes_learn_on_the_embedded_base(registry, tmp_path: Path) -> None:
    """Issue 11: 60 tickets, 3 labels, defaults only. The old 1e-3 x 3 recipe predicted one class (0.333)."""
    from loradock.adapters.training.options import TrainOptions
    from loradock.adapters.training.train import train
    from tests.train_support import write_keyword_csv

    data = write_keyword_csv(tmp_path / "tickets.csv", rows_per_label=20)
    result = train(registry, "tickets", TrainOptions(data=str(data), max_length=32, progress=False))
    assert result.created_domain and result.train_args["lr"] == 3e-3
    assert result.gate["passed"] and result.report.accuracy > 0.8
    assert registry.resolve("tickets@latest").number == 1


def test_short_texts_get_a_short_max_length() -> None:
    from loradock.adapters.training.recipe import MIN_AUTO_LENGTH

    rule = choose(100, 2, 16, lengths=[12] * 90 + [40] * 10)  # 95th percentile: 40 tokens
    assert rule.max_length == 64 and rule.length_p95 == 40
    assert choose(100, 2, 16, lengths=[5] * 100).max_length == MIN_AUTO_LENGTH
    assert "max_length 64" in rule.describe() and rule.to_dict()["length_p95"] == 40


def test_long_texts_get_the_cap_and_the_base_limit_wins() -> None:
    from loradock.adapters.training.recipe import MAX_AUTO_LENGTH

    long = [2000] * 100
    assert choose(100, 2, 16, lengths=long).max_length == MAX_AUTO_LENGTH
    assert choose(100, 2, 16, lengths=long, position_limit=48).max_length == 48
    assert choose(100, 2, 16).max_length is None  # no counts: the run or the domain decides


def test_train_records_the_length_from_the_data_and_an_explicit_one_wins(
    registry,
    tiny_base: str,
    tmp_path: Path,
) -> None:
    from loradock.adapters.training.options import TrainOptions
    from loradock.adapters.training.prepare import prepare
    from tests.train_support import write_keyword_csv

    data = str(write_keyword_csv(tmp_path / "tickets.csv", rows_per_label=10))  # 6 words: about 8 tokens
    auto = prepare(registry, "tickets", TrainOptions(data=data, base=tiny_base, progress=False))
    assert auto.recipe.max_length == 32 and auto.args["max_length"] == 32
    assert 6 <= auto.args["recipe_rule"]["length_p95"] <= 16
    pinned = prepare(registry, "tickets", TrainOptions(data=data, base=tiny_base, max_length=96, progress=False))
    assert pinned.recipe.max_length == 96 and pinned.args["recipe_rule"]["length_p95"] is None
    from loradock.registry import Domain

    registry.add_domain(Domain("own", ("billing", "technical", "shipping"), recipe=LoraRecipe(max_length=80)))
    assert prepare(registry, "own", TrainOptions(data=data, base=tiny_base, progress=False)).recipe.max_length == 80


def test_train_stores_the_chosen_length_with_the_version(registry, tiny_base: str, tmp_path: Path) -> None:
    from loradock.adapters.training.options import TrainOptions
    from loradock.adapters.training.train import train
    from tests.train_support import write_keyword_csv

    data = str(write_keyword_csv(tmp_path / "tickets.csv", rows_per_label=8))
    result = train(registry, "tickets", TrainOptions(data=data, base=tiny_base, epochs=1, progress=False))
    v = result.version
    assert v is not None and v.train_args["max_length"] == 32 and v.metrics["max_length"] == 32
    assert v.metrics["length_p95"] == v.train_args["recipe_rule"]["length_p95"] and v.metrics["loop"] == "own"

"""The recipe comes from the data's shape (rows, classes), not from the domain's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from loradock.adapters.training.recipe import MAX_EPOCHS, MIN_EPOCHS, choose
from loradock.registry import PRESETS, LoraRecipe


def test_few_rows_get_enough_steps_and_a_higher_rate() -> None:
    small = choose(48, 3, 16)  # the 60-row case after its 20% eval split
    assert small.steps_per_epoch == 3 and small.epochs == MAX_EPOCHS and small.lr == 3e-3
    assert small.epochs * small.steps_per_epoch > 3 * 3  # more than the old 9 steps


def test_large_sets_do_not_waste_epochs() -> None:
    big = choose(20_000, 2, 16)
    assert big.epochs == MIN_EPOCHS and big.lr == 5e-4
    assert big.warmup_ratio * big.epochs * big.steps_per_epoch <= 100


def test_more_classes_get_more_steps() -> None:
    assert choose(800, 8, 16).epochs > choose(800, 4, 16).epochs > choose(800, 2, 16).epochs == 3


def test_presets_follow_the_same_rule() -> None:
    for domain in PRESETS.values():
        assert domain.recipe.lr is None and domain.recipe.epochs is None
    assert LoraRecipe().lr is None


@pytest.mark.slow
def test_sixty_rows_three_classes_learn_on_the_embedded_base(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 11: 60 tickets, 3 labels, defaults only. The old 1e-3 x 3 recipe predicted one class (0.333)."""
    from loradock.adapters.training.train import TrainOptions, train
    from tests.train_support import write_keyword_csv

    data = write_keyword_csv(tmp_path / "tickets.csv", rows_per_label=20)
    result = train(registry, "tickets", TrainOptions(data=str(data), max_length=32, progress=False))
    assert result.created_domain and result.train_args["lr"] == 3e-3
    assert result.gate["passed"] and result.report.accuracy > 0.8
    assert registry.resolve("tickets@latest").number == 1

"""The one rule every gate uses to compare two accuracies (registry/gate_stats.py), at every sample size."""

from __future__ import annotations

import pytest

from loradock.registry import gate_stats
from loradock.registry.gates import QualityGate, check


def flipped(texts: int, losses: int, gains: int = 0) -> gate_stats.Paired:
    """Reference right on every text but `gains` of them; the candidate loses `losses` and gains `gains`."""
    return gate_stats.Paired(texts, texts - gains, texts - losses, losses, gains)


def test_one_flip_on_twenty_texts_is_noise_not_a_five_point_loss() -> None:
    verdict = gate_stats.decide(flipped(20, 1), max_drop=1.0)
    assert verdict["accuracy_drop"] == pytest.approx(5.0)
    assert (verdict["verdict"], verdict["passed"], verdict["statistic"]) == ("kept", True, gate_stats.MCNEMAR)
    assert verdict["mcnemar_p"] == pytest.approx(0.5)
    assert verdict["reason"].startswith("1 of 20 eval texts changed")
    assert verdict["reason"].endswith("a paired test (McNemar exact, p=0.5) cannot tell that from noise; kept")


@pytest.mark.parametrize(
    "texts,losses,max_drop,verdict,statistic",
    [
        (20, 0, 1.0, "kept", gate_stats.WITHIN_LIMIT),
        (5, 2, 1.0, "not enough data to refuse", gate_stats.MIN_COUNT),
        (20, 4, 1.0, "kept", gate_stats.MCNEMAR),  # p = 1/16
        (20, 5, 1.0, "refused", gate_stats.MCNEMAR),  # p = 1/32
        (1000, 5, 0.1, "refused", gate_stats.MCNEMAR),  # 0.5 points over a 0.1-point limit, and not noise
        (100_000, 40, 0.01, "refused", gate_stats.MCNEMAR),
    ],
)
def test_verdicts_at_every_size(texts: int, losses: int, max_drop: float, verdict: str, statistic: str) -> None:
    found = gate_stats.decide(flipped(texts, losses), max_drop=max_drop)
    assert (found["verdict"], found["statistic"]) == (verdict, statistic)
    assert found["passed"] is (verdict != "refused")


def test_binomial_tail_is_exact_where_floats_underflow() -> None:
    assert 0.5**1200 == 0.0 and 0.5 < gate_stats.binomial_tail(600, 1200) < 0.52


def test_gains_offset_losses_in_the_paired_test() -> None:
    found = gate_stats.decide(flipped(100, 9, gains=5), max_drop=1.0)
    assert found["accuracy_drop"] == pytest.approx(4.0) and found["verdict"] == "kept"
    assert found["mcnemar_p"] == pytest.approx(gate_stats.binomial_tail(9, 14))


def test_few_changed_predictions_on_many_unlabelled_texts_keep_the_candidate() -> None:
    """Accuracy cannot fall by more than the share of predictions that changed: 3 of 2,000 bounds it at 0.4%."""
    found = gate_stats.decide(flipped(30, 3), max_drop=1.0, agreement=gate_stats.Agreement(2000, 3))
    assert (found["verdict"], found["statistic"]) == ("kept", gate_stats.BINOMIAL_BOUND)
    assert found["agreement"]["changed_upper_bound"] < 0.01
    assert "3 of 2000 texts" in found["reason"]


def test_upper_bound_is_the_exact_clopper_pearson_bound() -> None:
    assert gate_stats.upper_bound(0, 300) == pytest.approx(1 - 0.05 ** (1 / 300), rel=1e-6)
    assert gate_stats.upper_bound(5, 5) == 1.0
    assert 0.01 < gate_stats.upper_bound(3, 100) < 0.08


def test_recheck_gives_the_verdict_from_the_recorded_numbers() -> None:
    record = gate_stats.decide(flipped(100, 8), max_drop=1.0)
    assert record["verdict"] == "refused" and gate_stats.recheck(record)["verdict"] == "refused"
    assert gate_stats.recheck(record, max_drop=10.0)["verdict"] == "kept"
    assert gate_stats.recheck({"applied": True, "accuracy_drop": 0}) is None  # recorded before verdicts


def test_training_gate_names_its_paired_numbers_against_the_baseline() -> None:
    counts = {"negative": 12, "positive": 8}
    # 12/12 negatives, 1/8 positives: 13/20 beats the baseline's 12/20, by a margin a coin could give.
    per_class = {"negative": {"recall": 1.0, "support": 12}, "positive": {"recall": 0.125, "support": 8}}
    narrow = check({"accuracy": 0.65, "macro_f1": 0.6, "per_class": per_class}, counts, QualityGate())
    assert narrow["passed"] and narrow["baseline_test"]["gains"] == 1 and narrow["baseline_test"]["losses"] == 0
    assert not narrow["baseline_test"]["beyond_noise"] and "cannot tell that win from noise" in narrow["note"]
    per_class = {"negative": {"recall": 1.0, "support": 12}, "positive": {"recall": 0.0, "support": 8}}
    tied = check({"accuracy": 0.6, "macro_f1": 0.375, "per_class": per_class}, counts, QualityGate())
    assert not tied["passed"] and "0 texts won, 0 lost of 20, McNemar exact p=1" in tied["reasons"][0]
    per_class = {"negative": {"recall": 0.9167, "support": 12}, "positive": {"recall": 1.0, "support": 8}}
    clear = check({"accuracy": 0.95, "macro_f1": 0.95, "per_class": per_class}, counts, QualityGate())
    assert clear["passed"] and clear["baseline_test"]["beyond_noise"] and "note" not in clear

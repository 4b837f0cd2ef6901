"""Metrics, the labelled report, length-grouped batching and the plots."""

from __future__ import annotations

import numpy as np
import pytest

from loradock.adapters.training import plots
from loradock.adapters.training.batching import (
    collate,
    length_grouped_batches,
    padding_ratio,
    sorted_batches,
)
from loradock.adapters.training.evaluate import compute_report, render, report_from_logits

LABELS = ("cat", "dog", "eel")


def test_metrics_from_a_known_confusion_matrix() -> None:
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 1, 0]
    report = compute_report(y_true, y_pred, LABELS)
    assert report.confusion_matrix == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.per_class["cat"]["precision"] == pytest.approx(2 / 3)
    assert report.per_class["cat"]["recall"] == pytest.approx(2 / 3)
    assert report.per_class["dog"]["precision"] == pytest.approx(2 / 3)
    assert report.per_class["dog"]["recall"] == pytest.approx(1.0)
    assert report.per_class["eel"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert report.macro_f1 == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)


def test_loss_from_logits() -> None:
    logits = np.array([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    report = report_from_logits(logits, [0, 1], LABELS)
    assert report.accuracy == 0.5  # argmax of a tie is the first label
    assert report.eval_loss == pytest.approx((np.log(1 + 2 * np.exp(-10)) + np.log(3)) / 2, rel=1e-4)


def test_report_table_has_true_rows_and_predicted_columns() -> None:
    text = render(compute_report([0, 1, 2, 2], [0, 1, 2, 1], LABELS))
    assert "accuracy 0.7500" in text
    lines = text.splitlines()
    header = next(line for line in lines if "pred cat" in line)
    assert header.index("pred cat") < header.index("pred dog") < header.index("pred eel")
    eel_row = next(line for line in lines if line.startswith("true eel"))
    assert eel_row.split()[2:] == ["0", "1", "1"]


def test_length_grouped_batches_cover_every_row_once_and_are_reproducible() -> None:
    lengths = np.random.default_rng(0).integers(3, 200, size=1000)
    batches = length_grouped_batches(lengths, 16, seed=1, epoch=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    again = length_grouped_batches(lengths, 16, seed=1, epoch=0)
    assert all((a == b).all() for a, b in zip(batches, again))
    next_epoch = length_grouped_batches(lengths, 16, seed=1, epoch=1)
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(batches, next_epoch))
    # Grouping by length wastes far less than padding every row to 256, or than random batches.
    random_batches = np.array_split(np.random.default_rng(2).permutation(1000), 63)
    assert padding_ratio(lengths, batches) < 0.1
    assert padding_ratio(lengths, batches) < padding_ratio(lengths, random_batches) / 3
    assert padding_ratio(lengths, batches, fixed=256) > 0.4


def test_collate_pads_to_the_longest_row_only() -> None:
    ids = [np.array([101, 5, 102]), np.array([101, 7, 8, 9, 102]), np.array([101, 102])]
    out = collate(ids, np.array([0, 2]), pad_id=0)
    assert out["input_ids"].tolist() == [[101, 5, 102], [101, 102, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert [len(b) for b in sorted_batches(np.array([3, 5, 2]), 2)] == [2, 1]


def test_plots_are_pngs(tmp_path) -> None:
    paths = [
        plots.loss_curve([1.0, 0.8, 0.7, 0.5, 0.4, 0.3], 3, tmp_path / "loss.png", [0.75, 0.45]),
        plots.accuracy_curve([0.6, 0.8], tmp_path / "accuracy.png", [0.55, 0.79]),
        plots.confusion_heatmap([[3, 1], [0, 4]], ["negative", "positive"], tmp_path / "confusion.png"),
    ]
    for path in paths:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000

"""Scores in HTTP answers come from the same softmax as `adapters predict` (adapters/predict.softmax)."""

from __future__ import annotations

import numpy as np

from loradock.adapters.predict import softmax, to_predictions
from loradock.serving.app import _scores


def test_served_scores_are_the_predict_softmax() -> None:
    logits = [1000.0, 999.0, -5.0]  # unshifted exp would overflow: both shift by the max
    served = _scores(logits, None)
    assert served == [float(p) for p in softmax(np.asarray(logits, dtype=np.float64))]
    assert max(served) == to_predictions(["t"], np.asarray([logits]), ["a", "b", "c"])[0].score


def test_one_logit_is_a_sigmoid_and_none_is_raw() -> None:
    assert _scores([0.0], None) == [0.5]
    assert _scores([2.0, -1.0], "none") == [2.0, -1.0]

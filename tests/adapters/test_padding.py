"""adapters/padding.pad_batch: the one collate under training, evaluation and both serving backends."""

from __future__ import annotations

import numpy as np
import pytest

from loradock.adapters.padding import pad_batch


def test_rows_pad_right_to_the_longest_with_a_mask() -> None:
    out = pad_batch([[101, 5, 102], [101, 102]], pad_id=9, names=("input_ids", "attention_mask", "token_type_ids"))
    assert out["input_ids"].tolist() == [[101, 5, 102], [101, 102, 9]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert out["token_type_ids"].tolist() == [[0, 0, 0], [0, 0, 0]]
    assert {a.dtype for a in out.values()} == {np.dtype(np.int64)}


def test_only_the_inputs_a_model_takes_are_built() -> None:
    assert list(pad_batch([np.array([1, 2])], 0, ["attention_mask", "input_ids"])) == ["attention_mask", "input_ids"]
    with pytest.raises(ValueError, match="position_ids"):
        pad_batch([[1]], 0, ["position_ids"])


def test_torch_and_onnx_backends_collate_through_it() -> None:
    """Both serving backends' batches are pad_batch's arrays (as tensors on the torch side)."""
    from types import SimpleNamespace

    from loradock.serving.backends.onnx import OnnxMultiLoraModel

    rows = [[101, 7, 8, 102], [101, 102]]
    fake = SimpleNamespace(pad_id=3, graph=SimpleNamespace(text_inputs=("input_ids", "attention_mask")))
    got = OnnxMultiLoraModel._collate(fake, rows)
    want = pad_batch(rows, 3)
    assert all((got[k] == want[k]).all() for k in want) and list(got) == list(want)

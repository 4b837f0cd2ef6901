"""The one onnxruntime session builder (adapters/ort_session.py) that predict, export checks and serving share."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def identity_graph(tmp_path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_threads_and_spinning_reach_the_session(identity_graph: Path) -> None:
    import onnxruntime as ort

    from loradock.adapters.ort_session import session

    options = session(identity_graph, 2, spin=False).get_session_options()
    assert options.intra_op_num_threads == 2 and options.inter_op_num_threads == 1
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_default_leaves_threads_and_spinning_to_onnxruntime(identity_graph: Path) -> None:
    import numpy as np

    from loradock.adapters.ort_session import session

    built = session(identity_graph)
    options = built.get_session_options()
    assert options.intra_op_num_threads == 0  # 0: onnxruntime picks
    with pytest.raises(RuntimeError):  # no entry: onnxruntime's default (spinning on)
        options.get_session_config_entry("session.intra_op.allow_spinning")
    x = np.ones((3, 2), dtype=np.float32)
    assert (built.run(None, {"x": x})[0] == x).all()

"""The one onnxruntime session builder: every ONNX graph loradock runs (predict, export checks, serving) opens here."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnxruntime

PROVIDERS = ["CPUExecutionProvider"]


def session(path: Path | str, threads: int | None = None, *, spin: bool = True) -> onnxruntime.InferenceSession:
    """A CPU session over `path` with full graph optimisation.

    `threads` caps intra-op threads (None: onnxruntime decides). `spin=False`
    stops idle intra-op threads busy-waiting between runs: a server needs that
    core for its HTTP side, and interleaved benchmarks for the next engine.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # sequential execution: one graph node at a time, threads go intra-op
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # ORT's own warnings about unused initializers are noise here
    return ort.InferenceSession(str(path), options, providers=PROVIDERS)

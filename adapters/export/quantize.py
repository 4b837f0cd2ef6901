"""int8 dynamic quantization of an ONNX file: the one quantizer every export uses.

onnxruntime's `quantize_dynamic` after its `quant_pre_process` step (shape
inference and graph optimisation), which is what its docs recommend for
transformer models. The single-adapter export quantizes every supported op;
the multi-adapter graph (onnx_multi.py) quantizes only the base MatMuls and
names the LoRA nodes to keep in fp32. Both go through `quantize_int8`, so the
weight settings and the pre-processing fallback cannot drift apart.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

# Per-channel scales with 7-bit weights: on the RT sentiment adapter (BENCHMARKS.md) per-tensor
# int8 lost 1.1 points on an AVX2 CPU without VNNI (u8s8 products saturate there), per-channel 0.4,
# per-channel + reduce_range 0.04, at the same 23 MB.
WEIGHT_OPTIONS: dict[str, Any] = {"weight_type": "QInt8", "per_channel": True, "reduce_range": True}


class Quantizer(Protocol):
    """Writes a quantized copy of the fp32 ONNX file `fp32` to `out`; returns what the report records about it."""

    def __call__(self, fp32: Path, out: Path) -> dict[str, Any]: ...


def quantize_int8(
    fp32: Path,
    out: Path,
    *,
    op_types: Sequence[str] | None = None,
    keep_fp32: Callable[[onnx.ModelProto], list[str]] | None = None,
) -> dict[str, Any]:
    """Dynamic int8 quantization of `fp32` into `out`, after onnxruntime's pre-processing.

    `op_types` limits the op types quantized (None: all onnxruntime supports);
    `keep_fp32` names, from the pre-processed model, the nodes left in fp32.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as work:
        pre = Path(work) / "preprocessed.onnx"
        preprocess = pre_process(fp32, pre)
        excluded = keep_fp32(onnx.load(str(pre))) if keep_fp32 else []
        quantize_dynamic(
            str(pre),
            str(out),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=list(op_types) if op_types else None,
            nodes_to_exclude=excluded,
        )
    report: dict[str, Any] = {
        "method": "onnxruntime.quantization.quantize_dynamic",
        "preprocess": {"quant_pre_process": preprocess},
        **WEIGHT_OPTIONS,
    }
    if op_types:
        report["op_types_to_quantize"] = list(op_types)
    if keep_fp32:
        report["nodes_kept_fp32"] = len(excluded)
    return report


def pre_process(fp32: Path, out: Path) -> dict[str, Any]:
    """onnxruntime's `quant_pre_process` into `out`; returns the options that worked."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # BERT's attention-mask arithmetic leaves symbolic dims that only merge with auto_merge;
    # without it symbolic shape inference stops ("Incomplete symbolic shape inference").
    options: dict[str, Any] = {"auto_merge": True}
    started = time.time()
    try:
        quant_pre_process(str(fp32), str(out), **options)
    except Exception as exc:  # onnxruntime raises a bare Exception here
        log.warning("symbolic shape inference failed (%s); pre-processing without it", exc)
        _remove_debug_dump(started)
        options = {"skip_symbolic_shape": True}
        quant_pre_process(str(fp32), str(out), **options)
    return options


def _remove_debug_dump(since: float) -> None:
    """On failure onnxruntime's symbolic shape inference dumps its partial model into the working directory."""
    dump = Path("sym_shape_infer_temp.onnx")
    if dump.is_file() and dump.stat().st_mtime >= since - 1:
        names = {t.location for t in _external_locations(dump)}
        dump.unlink()
        for name in names:
            Path(name).unlink(missing_ok=True)


def _external_locations(path: Path) -> list[Any]:
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, _get_all_tensors, uses_external_data

    model = onnx.load(str(path), load_external_data=False)
    return [ExternalDataInfo(t) for t in _get_all_tensors(model) if uses_external_data(t)]

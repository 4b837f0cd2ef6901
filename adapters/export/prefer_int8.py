"""fp32 always, int8 when it passes its gate: an export whose outcome never depends on the CPU's int8 kernels.

int8 kernels differ by CPU (AVX2, VNNI, AMX), so the same int8 graph can
pass its accuracy gate on one machine and fail it on another. A first command
(`adapters demo`) must not: it exports fp32, tries int8, and keeps int8 only
when its gate passes; otherwise it keeps fp32 and says in one line why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loradock.adapters.errors import AccuracyGateRefused
from loradock.adapters.export.onnx_export import ExportResult, Quantizer, export_onnx
from loradock.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreferredExport:
    """The export to use (int8 when its gate passed, else fp32), the fp32 one, and the int8 verdict."""

    chosen: ExportResult
    fp32: ExportResult
    precision: str
    int8_gate: dict[str, Any] = field(default_factory=dict)

    @property
    def note(self) -> str:
        """One line: what int8 scored and which precision was kept, and why."""
        reason = self.int8_gate.get("reason", "no verdict recorded")
        if self.precision == "int8":
            return f"int8 kept: {reason}"
        return f"int8 not kept, serving fp32: {reason}"


def export_preferring_int8(
    registry: Registry, ref: str, folder: Path | str, quantizer: Quantizer | None = None, overwrite: bool = True
) -> PreferredExport:
    """Export `ref` as fp32 to `folder`/onnx-fp32, then try int8 in `folder`/onnx-int8 and keep it if gated and passed."""
    folder = Path(folder)
    fp32 = export_onnx(registry, ref, folder / "onnx-fp32", overwrite=overwrite)
    try:
        int8 = export_onnx(
            registry, ref, folder / "onnx-int8", quantize="int8", overwrite=overwrite, quantizer=quantizer
        )
    except AccuracyGateRefused as exc:
        log.info("%s: int8 refused by its gate, keeping fp32: %s", ref, exc.gate.get("reason"))
        return PreferredExport(fp32, fp32, "fp32", exc.gate)
    gate = dict(int8.report.get("gate", {}))
    if not gate.get("applied"):
        # No labelled eval data: nothing shows int8 is as good, so fp32 (the serving backend does the same).
        gate.setdefault("reason", "int8 could not be gated")
        return PreferredExport(fp32, fp32, "fp32", gate)
    return PreferredExport(int8, fp32, "int8", gate)

"""The onnx backend: one onnxruntime graph per base, adapters fed as inputs, heads applied in numpy.

Stock onnxruntime, no custom ops (graph: `adapters/export/onnx_multi.py`).
Each resident adapter is kept as ready onnxruntime values ([1, r, in] A and
[1, out, r] B per target, zero-copy over numpy) in the cache's device tier: a
batch of one adapter feeds them as they are; a mixed batch stacks the
adapters present (padded to their largest rank) and a per-row index.

int8: the base MatMuls may run quantized, the LoRA path always fp32. A domain
is served from the int8 graph only after its own eval split (training's
`data/eval` artifact, its first `GATE_MAX_TEXTS` texts) shows no loss over
`MAX_INT8_DROP` accuracy points against the fp32 graph beyond noise
(registry/gate_stats.py, the rule every gate uses), the fp32 graph matching torch
within 1e-4 (tests/adapters/test_onnx_multi_parity.py). A domain that fails, or has no
eval split, is served from the fp32 graph; the reason is in `/v1/domains`
(`backend`, `precision`, `int8_gate`) and the log. Gate results are stored
beside the graph by adapter hash, so each adapter is gated once.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from loradock.adapters.export.onnx_multi import (
    INDEX_INPUT,
    OUTPUT,
    GraphInfo,
    a_input,
    b_input,
    ensure_graph,
    stack_lora,
)
from loradock.adapters.ort_session import session
from loradock.adapters.padding import pad_batch
from loradock.registry import gate_stats

from .base import adapter_slots
from .errors import GraphMismatchError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter

    from loradock.registry import Registry

    from ..weights import AdapterWeights

log = logging.getLogger(__name__)

MAX_INT8_DROP = 0.5  # accuracy points on the domain's own eval split
GATE_MAX_TEXTS = 500
GATES_DIR = "gates"


@dataclass(eq=False)
class OnnxAdapter:
    """One adapter as the graph takes it, plus its head and the precision it is served at."""

    sha256: str
    ref: str
    labels: list[str]
    a: dict[str, np.ndarray]  # path -> [1, r, in]
    b: dict[str, np.ndarray]  # path -> [1, out, r] (scaling folded in)
    values: dict[str, Any]  # input name -> OrtValue over the arrays above
    head_weight: np.ndarray  # [labels, hidden]
    head_bias: np.ndarray
    precision: str = "fp32"
    gate: dict[str, Any] = field(default_factory=dict)

    def head(self, pooled: np.ndarray) -> np.ndarray:
        return pooled @ self.head_weight.T + self.head_bias


class OnnxMultiLoraModel:
    """The engine's model for the onnx backend (a `Backend`, as `MultiLoraModel` is)."""

    backend = "onnx"

    def __init__(
        self,
        graph: GraphInfo,
        registry: Registry | None = None,
        threads: int = 1,
        int8: bool = True,
        max_length: int | None = None,
        require_gate: bool = True,
    ) -> None:
        from tokenizers import Tokenizer

        self.graph = graph
        self.registry = registry
        self.base_model = graph.base_model
        self.fingerprint = graph.fingerprint
        self.device = "cpu"
        self.max_length = max_length or graph.max_length
        self.targets = graph.targets
        # No spinning: busy-waiting intra-op threads would take the core the HTTP side needs between batches.
        self.sessions = {"fp32": session(graph.fp32_path, threads, spin=False)}
        self.int8 = int8 and graph.int8_path.is_file()
        if self.int8:
            self.sessions["int8"] = session(graph.int8_path, threads, spin=False)
        self.tokenizer = Tokenizer.from_file(str(graph.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(self.max_length)
        self.pad_id = int(graph.meta.get("pad_token_id", 0))
        # False only for throughput benches: int8 for every adapter, marked as ungated in /v1/domains.
        self.require_gate = require_gate
        self._gates: dict[str, dict[str, Any]] = {}
        self._gate_lock = threading.Lock()
        self._rows: Counter | None = None  # bound by bind_metrics

    @classmethod
    def for_base(
        cls,
        registry: Registry,
        base_model: str,
        max_length: int = 128,
        threads: int = 1,
        int8: bool = True,
        require_gate: bool = True,
    ) -> OnnxMultiLoraModel:
        """The model over the base's graph under the registry home, exporting it once if missing."""
        return cls(
            ensure_graph(registry.home, base_model, max_length=max_length),
            registry,
            threads,
            int8,
            max_length,
            require_gate,
        )

    @property
    def name(self) -> str:
        return f"onnx-{'int8' if self.int8 else 'fp32'}"

    def bind_metrics(self, registry: CollectorRegistry) -> None:
        """Rows run, labelled by backend and precision, in the server's metrics."""
        from prometheus_client import Counter

        self._rows = Counter(
            "loradock_backend_rows", "Rows run, by backend and precision.", ["backend", "precision"], registry=registry
        )

    # -- adapters ------------------------------------------------------------

    def check_modules(self, weights: AdapterWeights) -> None:
        """Refuse an adapter the graph has no LoRA input for, or whose shapes do not fit; then gate it.

        The engine calls this when an adapter is read from the registry, outside the cache's lock, so
        the int8 gate (seconds, once per adapter hash) never holds up batches of other adapters.
        """
        self._check_shapes(weights)
        self.int8_gate(self._as_adapter(weights))

    def _check_shapes(self, weights: AdapterWeights) -> None:
        for path, (a, b) in weights.lora.items():
            dims = self.targets.get(path)
            if dims is None:
                raise GraphMismatchError(
                    f"{weights.ref} targets {path}, which the base's ONNX graph has no LoRA input for "
                    f"(graph targets: {', '.join(self.graph.meta.get('target_names', []))}); "
                    "serve it with --backend torch."
                )
            if (a.shape[1], b.shape[0]) != dims:
                raise GraphMismatchError(f"{weights.ref}: LoRA shapes for {path} do not fit this base.")
        if not getattr(weights, "linear_head", True):
            raise GraphMismatchError(
                f"{weights.ref} has a head beyond one Linear on the pooled output "
                f"({', '.join(sorted(weights.head))}); serve it with --backend torch."
            )
        if weights.head_weight.shape[1] != self.graph.hidden:
            raise GraphMismatchError(
                f"{weights.ref}: head expects {weights.head_weight.shape[1]} features, "
                f"the base gives {self.graph.hidden}."
            )

    def prepare(self, weights: AdapterWeights) -> OnnxAdapter:
        """The adapter as ready onnxruntime values, at the precision its int8 gate allows."""
        self._check_shapes(weights)
        adapter = self._as_adapter(weights)
        adapter.gate = self.int8_gate(adapter)  # already decided in check_modules when the engine loaded it
        adapter.precision = "int8" if adapter.gate.get("passed") else "fp32"
        return adapter

    def _as_adapter(self, weights: AdapterWeights) -> OnnxAdapter:
        import onnxruntime as ort

        a = {p: np.ascontiguousarray(t.detach().float().numpy()[None]) for p, (t, _) in weights.lora.items()}
        b = {p: np.ascontiguousarray(t.detach().float().numpy()[None]) for p, (_, t) in weights.lora.items()}
        values = {}
        for path in a:
            values[a_input(path)] = ort.OrtValue.ortvalue_from_numpy(a[path])
            values[b_input(path)] = ort.OrtValue.ortvalue_from_numpy(b[path])
        return OnnxAdapter(
            weights.sha256,
            weights.ref,
            list(weights.labels),
            a,
            b,
            values,
            weights.head_weight.detach().float().numpy(),
            weights.head_bias.detach().float().numpy(),
        )

    # -- int8 gate -------------------------------------------------------------

    def int8_gate(self, adapter: OnnxAdapter) -> dict[str, Any]:
        """Whether this adapter may be served from the int8 graph, and why (cached by adapter hash)."""
        if not self.int8:
            return {"passed": False, "applied": False, "reason": "int8 graph off (fp32 serving asked for)"}
        if not self.require_gate:
            return {"passed": True, "applied": False, "reason": "int8 without its gate (benchmark setting)"}
        with self._gate_lock:
            if adapter.sha256 in self._gates:
                return self._gates[adapter.sha256]
            stored = self.graph.folder / GATES_DIR / f"{adapter.sha256}.json"
            gate = json.loads(stored.read_text()) if stored.is_file() else None
            if (
                gate is not None
                and gate.get("applied")
                and (gate_stats.recheck(gate) or {}).get("verdict") != gate.get("verdict")
            ):
                gate = None  # written by older rules, or its verdict does not follow from its numbers: gate again
            if gate is None:
                gate = self._run_gate(adapter)
                if gate.get("applied"):
                    _write_json(stored, gate)
            self._gates[adapter.sha256] = gate
        level = logging.INFO if gate["passed"] else logging.WARNING
        log.log(level, "%s served from %s: %s", adapter.ref, "int8" if gate["passed"] else "fp32", gate["reason"])
        return gate

    def _run_gate(self, adapter: OnnxAdapter) -> dict[str, Any]:
        from loradock.adapters.export.probes import eval_probes

        data = None
        if self.registry is not None:
            try:
                data = eval_probes(self.registry, self.registry.resolve(adapter.ref))
            except Exception as exc:
                log.warning("cannot read the eval split of %s: %s", adapter.ref, exc)
        if data is None or not data.labelled:
            return {
                "passed": False,
                "applied": False,
                "reason": "no labelled eval split recorded (artifact data/eval), so int8 is not gated: fp32",
            }
        index = {label: i for i, label in enumerate(adapter.labels)}
        pairs = [(t, index[lab]) for t, lab in zip(data.texts, data.labels or []) if lab in index][:GATE_MAX_TEXTS]
        if not pairs:
            return {"passed": False, "applied": False, "reason": "eval split has none of the adapter's labels: fp32"}
        texts, gold = [t for t, _ in pairs], [g for _, g in pairs]
        predicted = {precision: self.gate_predictions(adapter, texts, precision) for precision in ("fp32", "int8")}
        paired = gate_stats.Paired.from_predictions(gold, predicted["fp32"], predicted["int8"])
        verdict = gate_stats.decide(
            paired,
            MAX_INT8_DROP,
            gate_stats.Agreement.from_predictions(predicted["fp32"], predicted["int8"]),
            names=("fp32", "int8"),
        )
        served = "int8" if verdict["passed"] else "fp32"
        return {
            **verdict,
            "applied": True,
            "accuracy_fp32": 100 * paired.reference_right / len(texts),
            "accuracy_int8": 100 * paired.candidate_right / len(texts),
            "max_drop": MAX_INT8_DROP,
            "reason": f"{verdict['reason']}: served from {served}",
        }

    def gate_predictions(self, adapter: OnnxAdapter, texts: Sequence[str], precision: str) -> list[int]:
        """The adapter's predicted label ids on `texts` through the fp32 or int8 graph (what the gate compares)."""
        logits = np.concatenate(
            [
                np.stack(self._run_group(self.encode(texts[i : i + 32]), [adapter] * len(texts[i : i + 32]), precision))
                for i in range(0, len(texts), 32)
            ]
        )
        return [int(x) for x in logits.argmax(-1)]

    # -- inference -----------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated to max_length (the Rust tokenizer releases the GIL)."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def run(self, rows: Sequence[Sequence[int]], adapters: Sequence[OnnxAdapter]) -> list[np.ndarray]:
        """Logits per row (float32 numpy), row i through adapters[i] and its head."""
        out: list[np.ndarray | None] = [None] * len(rows)
        for precision in ("int8", "fp32"):
            members = [i for i, a in enumerate(adapters) if a.precision == precision]
            if not members:
                continue
            logits = self._run_group([rows[i] for i in members], [adapters[i] for i in members], precision)
            for i, row in zip(members, logits):
                out[i] = row
            if self._rows is not None:
                self._rows.labels(self.backend, precision).inc(len(members))
        return out  # type: ignore[return-value]

    def _run_group(
        self, rows: Sequence[Sequence[int]], adapters: Sequence[OnnxAdapter], precision: str
    ) -> list[np.ndarray]:
        import onnxruntime as ort

        slots, unique = adapter_slots(adapters)
        feeds = {name: ort.OrtValue.ortvalue_from_numpy(array) for name, array in self._collate(rows).items()}
        feeds[INDEX_INPUT] = ort.OrtValue.ortvalue_from_numpy(
            np.array([slots[a.sha256] for a in adapters], dtype=np.int64)
        )
        feeds.update(self._stacks(unique))
        pooled = self.sessions[precision].run_with_ort_values([OUTPUT], feeds)[0].numpy()
        logits: list[np.ndarray | None] = [None] * len(rows)
        for slot, adapter in enumerate(unique):
            members = [i for i, a in enumerate(adapters) if slots[a.sha256] == slot]
            for i, row in zip(members, adapter.head(pooled[members]).astype(np.float32)):
                logits[i] = row
        return logits  # type: ignore[return-value]

    def _collate(self, rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        return pad_batch(rows, self.pad_id, self.graph.text_inputs)

    def _stacks(self, unique: Sequence[OnnxAdapter]) -> dict[str, Any]:
        import onnxruntime as ort

        if len(unique) == 1 and set(unique[0].a) == set(self.targets):  # one adapter: its ready values
            return {name: value for name, value in unique[0].values.items()}
        pairs = [{p: (a.a[p][0], a.b[p][0]) for p in a.a} for a in unique]
        return {
            name: ort.OrtValue.ortvalue_from_numpy(array) for name, array in stack_lora(self.targets, pairs).items()
        }

    # -- views -----------------------------------------------------------------

    def describe(self, adapter: Any) -> dict[str, Any]:
        """What `/v1/domains` shows for an adapter on this backend."""
        if not isinstance(adapter, OnnxAdapter):
            return {"backend": self.backend}
        return {"backend": self.backend, "precision": adapter.precision, "int8_gate": adapter.gate}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a gate result is either complete or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)

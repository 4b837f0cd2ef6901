"""One ONNX graph per base model that serves any number of LoRA adapters, one per row.

onnxruntime picks LoRA adapters per `Run()` (the whole batch); here the
adapters are graph *inputs* instead. At every targeted Linear the graph adds
a LoRA term built from standard ops, as `serving/backends/torch_backend.py` does in torch:

    a = Gather(lora_A.<path> [U, r, in], adapter_index [B])     -> [B, r, in]
    b = Gather(lora_B.<path> [U, out, r], adapter_index [B])    -> [B, out, r]
    y = x @ W + bias + (x @ a^T) @ b^T                           (scaling folded into B)

U is the number of adapters present in the batch, r the largest rank among
them (smaller ranks are zero-padded: zero rows and columns add nothing). The
graph outputs the pooled representation; each row's own classification head
(any label count) is applied after it, in numpy. A new adapter, a new version
or the 1,000th adapter use the same graph: nothing is re-exported until the
base weights change.

The graph lives under the registry home, keyed by the base's weight
fingerprint: `ADAPTERS_HOME/graphs/<fingerprint>/<targets>/` (the registry
stores artifacts per version and per domain, and a graph belongs to neither),
written whole or not at all through `adapters/outdir.py`'s staged output.
The int8 variant quantizes only the base MatMuls, through the same quantizer
as `onnx_export.py` (adapters/export/quantize.py); the LoRA path stays fp32.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from loradock.adapters.environment import library_versions
from loradock.adapters.errors import ExportError, ParityError
from loradock.adapters.outdir import staged_output

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

FP32_FILE = "encoder.onnx"
INT8_FILE = "encoder-int8.onnx"
META_FILE = "graph.json"
TOKENIZER_FILE = "tokenizer.json"
GRAPHS_DIR = "graphs"
INDEX_INPUT = "adapter_index"
OUTPUT = "pooled"
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_TARGETS = ("query", "value")
DEFAULT_OPSET = 17
# fp32 graph vs the same LoRA in eager torch: both are fp32 and the same maths in another order.
PARITY_TOLERANCE = 1e-4


def a_input(path: str) -> str:
    return f"lora_A.{path}"


def b_input(path: str) -> str:
    return f"lora_B.{path}"


@dataclass(frozen=True)
class GraphInfo:
    """What `graph.json` records: enough to feed the graph without torch."""

    folder: Path
    base_model: str
    fingerprint: str
    targets: dict[str, tuple[int, int]]  # module path -> (in_features, out_features)
    text_inputs: tuple[str, ...]
    hidden: int
    max_length: int
    meta: dict[str, Any]

    @property
    def fp32_path(self) -> Path:
        return self.folder / FP32_FILE

    @property
    def int8_path(self) -> Path:
        return self.folder / INT8_FILE

    @classmethod
    def read(cls, folder: Path) -> GraphInfo:
        meta = json.loads((folder / META_FILE).read_text())
        return cls(
            folder,
            meta["base_model"],
            meta["base_fingerprint"],
            {p: (int(d[0]), int(d[1])) for p, d in meta["targets"].items()},
            tuple(meta["text_inputs"]),
            int(meta["hidden"]),
            int(meta["max_length"]),
            meta,
        )


def targets_key(suffixes: Sequence[str]) -> str:
    """The folder name for a set of targeted module names, e.g. 'query+value'."""
    return "+".join(sorted(set(suffixes)))


def graph_folder(home: Path, fingerprint: str, suffixes: Sequence[str] = DEFAULT_TARGETS) -> Path:
    """Where the graph of this base (by weight fingerprint) and target set lives."""
    return Path(home) / GRAPHS_DIR / fingerprint.replace("sha256:", "") / targets_key(suffixes)


def default_targets(config: Any) -> tuple[str, ...]:
    """The architecture's LoRA targets when adapters/architectures.py knows it, else BERT's query/value."""
    try:
        from loradock.adapters.architectures import lora_targets
    except ImportError:
        return DEFAULT_TARGETS
    try:
        return tuple(lora_targets(config))
    except Exception:
        return DEFAULT_TARGETS


# -- the torch module that is traced -------------------------------------------------


def _lora_modules() -> tuple[type, type]:
    """The traced wrapper classes (built lazily: torch is imported only when exporting)."""
    import torch
    from torch import nn

    class StackedLoraLinear(nn.Module):
        """A base Linear plus each row's own LoRA term, read from the stacks set for this forward."""

        def __init__(self, base: nn.Linear, path: str, state: dict) -> None:
            super().__init__()
            self.base, self.path, self.state = base, path, state

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a_stack, b_stack, index = self.state[self.path]
            a = a_stack.index_select(0, index)  # [B, r, in]: ONNX Gather
            b = b_stack.index_select(0, index)  # [B, out, r]
            return self.base(x) + torch.matmul(torch.matmul(x, a.transpose(1, 2)), b.transpose(1, 2))

    class MultiLoraEncoder(nn.Module):
        """(text inputs, adapter_index, A and B stacks per target) -> pooled representation."""

        def __init__(self, classifier: nn.Module, paths: list[str], text_inputs: tuple[str, ...]) -> None:
            super().__init__()
            self.classifier, self.paths, self.text_inputs = classifier, paths, text_inputs
            self.state: dict[str, tuple] = {}
            for path in paths:
                parent_path, _, child = path.rpartition(".")
                parent = classifier.get_submodule(parent_path)
                setattr(parent, child, StackedLoraLinear(getattr(parent, child), path, self.state))

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            n = len(self.text_inputs)
            texts, index, stacks = args[:n], args[n], args[n + 1 :]
            for i, path in enumerate(self.paths):
                self.state[path] = (stacks[2 * i], stacks[2 * i + 1], index)
            try:
                # nn.Module's __getattr__ is typed Tensor | Module; a transformers model's base_model is a Module.
                encoder = cast(nn.Module, self.classifier.base_model)
                return encoder(**dict(zip(self.text_inputs, texts))).pooler_output
            finally:
                self.state.clear()

    return StackedLoraLinear, MultiLoraEncoder


def _target_paths(model: Any, suffixes: Sequence[str]) -> dict[str, tuple[int, int]]:
    from torch import nn

    found = {
        name: (m.in_features, m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] in set(suffixes)
    }
    if not found:
        raise ExportError(
            f"The base has no Linear layers named {list(suffixes)}; pass the module names its adapters target."
        )
    return found


def stack_lora(
    targets: dict[str, tuple[int, int]], adapters: Sequence[dict[str, tuple[np.ndarray, np.ndarray]]]
) -> dict[str, np.ndarray]:
    """The graph's LoRA inputs for these adapters (slot u = adapters[u]): per target, A [U, r_max, in] and
    B [U, out, r_max], zero-padded to the largest rank; a module an adapter skips stays zero (no change)."""
    out = {}
    for path, (d_in, d_out) in targets.items():
        r_max = max((pairs[path][0].shape[0] for pairs in adapters if path in pairs), default=1)
        a = np.zeros((len(adapters), r_max, d_in), dtype=np.float32)
        b = np.zeros((len(adapters), d_out, r_max), dtype=np.float32)
        for u, pairs in enumerate(adapters):
            if path in pairs:
                la, lb = pairs[path]
                a[u, : la.shape[0]] = la
                b[u, :, : lb.shape[1]] = lb
        out[a_input(path)], out[b_input(path)] = a, b
    return out


def random_stacks(
    targets: dict[str, tuple[int, int]], adapters: int, rank: int, seed: int = 0, scale: float = 0.05
) -> dict[str, np.ndarray]:
    """Random A/B stacks for every target: to trace the graph and to check it."""
    rng = np.random.default_rng(seed)
    out = {}
    for path, (d_in, d_out) in targets.items():
        out[a_input(path)] = (rng.standard_normal((adapters, rank, d_in)) * scale).astype(np.float32)
        out[b_input(path)] = (rng.standard_normal((adapters, d_out, rank)) * scale).astype(np.float32)
    return out


# -- export ----------------------------------------------------------------------------


def export_graph(
    base_model: str,
    out: Path,
    suffixes: Sequence[str] | None = None,
    max_length: int = 128,
    opset: int = DEFAULT_OPSET,
    quantize: bool = True,
    overwrite: bool = False,
) -> GraphInfo:
    """Export the base's encoder with per-row LoRA inputs (and its int8 variant) into `out`, checked."""

    from loradock.adapters.base import base_info, load_classifier, load_tokenizer

    info = base_info(base_model)
    classifier = load_classifier(base_model, ["unused"]).eval()  # the placeholder head is never exported
    tokenizer = load_tokenizer(base_model)
    suffixes = tuple(suffixes or default_targets(classifier.config))
    targets = _target_paths(classifier, suffixes)
    if getattr(classifier.base_model, "pooler", None) is None:
        raise ExportError(
            f"Base {base_model!r} ({classifier.config.model_type}) has no pooler; the multi-adapter "
            "graph serves BERT-style encoders with a pooler. Serve it with --backend torch."
        )
    text_inputs = tuple(n for n in TEXT_INPUTS if n in tokenizer.model_input_names)
    _, wrapper_cls = _lora_modules()
    wrapper = wrapper_cls(classifier, list(targets), text_inputs).eval()
    started = time.perf_counter()
    with staged_output(out, overwrite) as tmp:
        fp32 = tmp / FP32_FILE
        _trace(wrapper, tokenizer, targets, text_inputs, fp32, opset)
        diff = _check_graph(wrapper, tokenizer, targets, text_inputs, fp32)
        tokenizer.save_pretrained(str(tmp))
        if not (tmp / TOKENIZER_FILE).is_file():
            raise ExportError(f"Base {base_model!r} has no fast tokenizer (tokenizer.json); the graph needs one.")
        meta: dict[str, Any] = {
            "format": "loradock-onnx-multi/1",
            "base_model": base_model,
            "base_fingerprint": info["base_fingerprint"],
            "model_type": classifier.config.model_type,
            "targets": {p: list(d) for p, d in targets.items()},
            "target_names": list(suffixes),
            "text_inputs": list(text_inputs),
            "index_input": INDEX_INPUT,
            "output": OUTPUT,
            "hidden": int(classifier.config.hidden_size),
            "max_length": max_length,
            "opset": opset,
            "pad_token_id": int(tokenizer.pad_token_id or 0),
            "fp32_max_abs_diff": diff,
            "tolerance": PARITY_TOLERANCE,
            "libraries": library_versions(),
        }
        if quantize:
            meta["int8"] = quantize_graph(fp32, tmp / INT8_FILE)
        meta["export_s"] = round(time.perf_counter() - started, 2)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    log.info(
        "exported the multi-adapter graph of %s to %s in %.1f s (max abs diff %.2g)",
        base_model,
        out,
        meta["export_s"],
        diff,
    )
    return GraphInfo.read(Path(out))


def _feeds(
    tokenizer: Any, texts: list[str], text_inputs: tuple[str, ...], index: list[int], stacks: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    enc = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="np")
    feeds = {n: enc[n].astype(np.int64) for n in text_inputs}
    feeds[INDEX_INPUT] = np.asarray(index, dtype=np.int64)
    return {**feeds, **stacks}


def _ordered(feeds: dict[str, np.ndarray], text_inputs: tuple[str, ...], targets: dict) -> list[str]:
    names = [*text_inputs, INDEX_INPUT]
    for path in targets:
        names += [a_input(path), b_input(path)]
    return names


def _trace(wrapper: Any, tokenizer: Any, targets: dict, text_inputs: tuple[str, ...], path: Path, opset: int) -> None:
    import torch

    # Batch 2, 3 adapters, rank 4, two lengths: no traced axis is 1 or equal to another.
    feeds = _feeds(
        tokenizer,
        ["a short text", "a somewhat longer text to trace here"],
        text_inputs,
        [2, 0],
        random_stacks(targets, 3, 4),
    )
    names = _ordered(feeds, text_inputs, targets)
    args = tuple(torch.from_numpy(feeds[n]) for n in names)
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in text_inputs}
    axes[INDEX_INPUT] = {0: "batch"}
    for p in targets:
        axes[a_input(p)] = {0: "adapters", 1: "rank"}
        axes[b_input(p)] = {0: "adapters", 2: "rank"}
    axes[OUTPUT] = {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")  # tracer warnings say nothing actionable here
        torch.onnx.export(
            wrapper,
            args,
            str(path),
            input_names=names,
            output_names=[OUTPUT],
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
            dynamic_axes=axes,
        )


def _check_graph(wrapper: Any, tokenizer: Any, targets: dict, text_inputs: tuple[str, ...], path: Path) -> float:
    """Max abs difference of the pooled output, graph vs eager torch, on shapes other than the traced ones."""
    import torch

    from loradock.adapters.ort_session import session as ort_session

    session = ort_session(path)
    texts = ["one", "two words here", "and a third, longer text with several more words in it", "x y z", "ok"]
    worst = 0.0
    for count, rank, index in ((1, 1, [0, 0, 0, 0, 0]), (4, 7, [3, 1, 0, 2, 1])):
        feeds = _feeds(tokenizer, texts, text_inputs, index, random_stacks(targets, count, rank, seed=rank))
        names = _ordered(feeds, text_inputs, targets)
        got = session.run([OUTPUT], {n: feeds[n] for n in names})[0]
        with torch.inference_mode():
            want = wrapper(*(torch.from_numpy(feeds[n]) for n in names)).numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    if not worst <= PARITY_TOLERANCE:
        raise ParityError(
            f"The multi-adapter graph differs from eager torch by {worst:.3g} (max abs, pooled), "
            f"over {PARITY_TOLERANCE:g}; nothing was written."
        )
    return worst


def lora_nodes(model: Any) -> list[str]:
    """Names of every node on a LoRA path: from the lora_A/lora_B inputs up to (not including) the Add."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    frontier = [i.name for i in model.graph.input if i.name.startswith(("lora_A.", "lora_B."))]
    seen: set[str] = set()
    while frontier:
        value = frontier.pop()
        for node in consumers.get(value, []):
            if node.name in seen or node.op_type == "Add":
                continue  # the Add joins the base output: the base path starts there
            seen.add(node.name)
            frontier.extend(node.output)
    return sorted(seen)


def quantize_graph(fp32: Path, out: Path) -> dict[str, Any]:
    """int8 base MatMuls (dynamic, per-channel, reduce_range), the LoRA path left in fp32."""
    from loradock.adapters.export.quantize import quantize_int8

    # MatMul only: the weights are the base's; activations x activations (attention, LoRA) stay fp32.
    return quantize_int8(fp32, out, op_types=["MatMul"], keep_fp32=lora_nodes)


def ensure_graph(
    home: Path, base_model: str, suffixes: Sequence[str] | None = None, max_length: int = 128
) -> GraphInfo:
    """The base's graph under `home`, exported on first use and reused until the base weights change."""
    from loradock.adapters.base import base_info, resolve_base

    fingerprint = base_info(base_model)["base_fingerprint"]
    if suffixes is None:
        from transformers import AutoConfig

        suffixes = default_targets(AutoConfig.from_pretrained(str(resolve_base(base_model))))
    folder = graph_folder(home, fingerprint, suffixes)
    if (folder / META_FILE).is_file():
        return GraphInfo.read(folder)
    try:
        return export_graph(base_model, folder, suffixes, max_length)
    except ExportError:
        if (folder / META_FILE).is_file():  # another process exported it meanwhile
            return GraphInfo.read(folder)
        raise


def find_graph(home: Path, fingerprint: str, suffixes: Sequence[str] = DEFAULT_TARGETS) -> GraphInfo | None:
    """The graph already exported for this base, or None (never exports)."""
    folder = graph_folder(home, fingerprint, suffixes)
    return GraphInfo.read(folder) if (folder / META_FILE).is_file() else None

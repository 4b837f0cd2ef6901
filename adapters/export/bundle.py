"""Edge bundle: the base's multi-adapter graph plus several domains' stacked adapters and heads.

`adapters export D1,D2,... --format onnx-multi --out DIR` writes:

    model.onnx      the fp32 multi-adapter graph (adapters/export/onnx_multi.py)
    adapters.npz    lora_A.<path> [U, r, in] and lora_B.<path> [U, out, r], row u = domains[u]
    heads.npz       <domain>.weight [labels, hidden] and <domain>.bias [labels]
    bundle.json     domains (in adapter-index order), label names, versions, inputs, max_length
    tokenizer.json  the base's tokenizer (the `tokenizers` package reads it)

It runs with onnxruntime, numpy and tokenizers alone (README snippet; tested
in a fresh process that imports neither torch nor loradock). It reads adapters
with the reader the server uses (`adapters/peft_weights.py`), so a served and a
bundled adapter are the same numbers.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from loradock.adapters.errors import ExportError
from loradock.adapters.export.onnx_multi import TOKENIZER_FILE, a_input, b_input, ensure_graph, stack_lora
from loradock.adapters.outdir import staged_output
from loradock.adapters.peft_weights import read_adapter
from loradock.registry import Registry

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
BUNDLE_FILE = "bundle.json"


@dataclass(frozen=True)
class BundleResult:
    out: Path
    refs: list[str]
    meta: dict[str, Any]


def export_bundle(
    registry: Registry, refs: Sequence[str], out: Path | str, quantize: str | None = None, overwrite: bool = False
) -> BundleResult:
    """Write an edge bundle for `refs` (one version per domain, all on one base) into `out`."""
    if quantize is not None:
        raise ExportError(
            f"--quantize {quantize} is not offered for --format onnx-multi bundles yet: the int8 "
            "graph is gated per domain when served ('adapters serve --backend onnx'); "
            "export the bundle without --quantize."
        )
    versions = [registry.resolve(ref) for ref in refs]
    if not versions:
        raise ExportError("Name at least one version: adapters export D1,D2 --format onnx-multi --out DIR.")
    domains = [v.domain for v in versions]
    twice = sorted({d for d in domains if domains.count(d) > 1})
    if twice:
        raise ExportError(f"Domain(s) {', '.join(twice)} named twice; a bundle holds one version per domain.")
    bases = {(v.base_model, v.base_fingerprint) for v in versions}
    if len({b for b, _ in bases}) > 1 or len({f for _, f in bases if f}) > 1:
        raise ExportError(
            f"{', '.join(v.ref for v in versions)} were trained on different bases "
            f"({sorted({str(b) for b, _ in bases})}); a bundle holds adapters of one base."
        )
    graph = ensure_graph(registry.home, versions[0].base_model or "")
    weights = [read_adapter(v, registry.path(v.ref)) for v in versions]
    for v, w in zip(versions, weights):
        if v.base_fingerprint and v.base_fingerprint != graph.fingerprint:
            raise ExportError(
                f"{v.ref} was trained on base weights {v.base_fingerprint[:19]}, but "
                f"{graph.base_model} here is {graph.fingerprint[:19]}; nothing was written."
            )
        outside = sorted(set(w.lora) - set(graph.targets))
        if outside:
            raise ExportError(
                f"{v.ref} targets {outside[0]}, which the graph has no LoRA input for; "
                "export it alone with --format onnx instead."
            )
    with staged_output(Path(out), overwrite) as tmp:
        shutil.copyfile(graph.fp32_path, tmp / MODEL_FILE)
        shutil.copyfile(graph.folder / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        pairs = [{p: (a.numpy(), b.numpy()) for p, (a, b) in w.lora.items()} for w in weights]
        # numpy's stub types **kwds as `allow_pickle: bool`; the arrays are what savez writes.
        np.savez(tmp / "adapters.npz", **cast(dict[str, Any], stack_lora(graph.targets, pairs)))
        np.savez(
            tmp / "heads.npz",
            **cast(
                dict[str, Any],
                {
                    f"{w_domain}.{part}": array
                    for w_domain, w in zip(domains, weights)
                    for part, array in (("weight", w.head_weight.numpy()), ("bias", w.head_bias.numpy()))
                },
            ),
        )
        meta = {
            "format": "loradock-onnx-multi-bundle/1",
            "domains": domains,
            "labels": {d: list(v.labels) for d, v in zip(domains, versions)},
            "versions": {d: {"ref": v.ref, "sha256": v.sha256} for d, v in zip(domains, versions)},
            "base_model": graph.base_model,
            "base_fingerprint": graph.fingerprint,
            "max_length": graph.max_length,
            "pad_token_id": graph.meta.get("pad_token_id", 0),
            "inputs": [
                *graph.text_inputs,
                "adapter_index",
                *(n for p in graph.targets for n in (a_input(p), b_input(p))),
            ],
            "output": "pooled",
            "head": "logits = pooled @ heads[f'{domain}.weight'].T + heads[f'{domain}.bias']",
        }
        (tmp / BUNDLE_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    log.info("wrote an onnx-multi bundle of %s to %s", ", ".join(v.ref for v in versions), out)
    return BundleResult(Path(out), [v.ref for v in versions], meta)

"""The torch backend: one shared encoder, many LoRA adapters, each row of a batch through its own adapter and head.

Every targeted Linear (query/value for our presets) is wrapped once. For a
batch, the adapters present are stacked (padded to the largest rank; zero
rows and columns add nothing), and each row gathers its own A and B, so rows
for different domains share one forward pass of the encoder. PEFT's
`adapter_names` does the same by looping over adapters per module; the bench
compares the two (bench/serve.py).

Heads differ by architecture (BERT: one Linear on the pooler output; RoBERTa
and ELECTRA: dense + out_proj on the first token; DistilBERT: pre_classifier +
classifier; DeBERTa: pooler + classifier; ModernBERT: pooling + head +
classifier) and by domain (label count). After the shared encoder pass, each
domain's rows go through the classifier's own head code with that domain's
head tensors (`torch.func.functional_call`), the encoder replaced for that call
by its already computed outputs. BERT keeps a direct matmul on the pooler output.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from loradock.adapters.padding import TEXT_INPUTS, pad_batch

from ..errors import AdapterLoadError
from .base import adapter_slots

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from transformers import PreTrainedTokenizerBase

    from ..weights import AdapterWeights

log = logging.getLogger(__name__)


@dataclass
class _Stack:
    a: torch.Tensor  # [n_adapters, r_max, in]
    b: torch.Tensor  # [n_adapters, out, r_max]
    index: torch.Tensor | None  # [batch] adapter slot of each row; None when one adapter serves all rows


class _BatchState:
    """What the wrapped Linears read during one forward: the stacks for this batch."""

    def __init__(self) -> None:
        self.stacks: dict[str, _Stack] = {}


class _SharedInput(Exception):
    """A targeted Linear saw an input shared by all rows (DeBERTa-v3 projects its relative position
    embeddings through query_proj/key_proj once per batch), so per-row adapters cannot apply there."""


class BatchedLoraLinear(nn.Module):
    """A base Linear plus, for each row, that row's adapter's LoRA update (read from the batch state)."""

    def __init__(self, base: nn.Linear, path: str, state: _BatchState) -> None:
        super().__init__()
        self.base = base
        self.path = path
        self._state = state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        stack = self._state.stacks.get(self.path)
        if stack is None:
            return out
        if stack.index is None:  # one adapter for the whole batch: plain matmuls
            return out + (x @ stack.a[0].T) @ stack.b[0].T
        if x.dim() != 3 or x.shape[0] != stack.index.shape[0]:
            raise _SharedInput(self.path)
        a = stack.a.index_select(0, stack.index)  # [batch, r, in]
        b = stack.b.index_select(0, stack.index)  # [batch, out, r]
        return out + torch.bmm(torch.bmm(x, a.transpose(1, 2)), b.transpose(1, 2))


class _Replay(nn.Module):
    """Stands in for the encoder inside the classifier: returns its outputs, already computed, for some rows."""

    def __init__(self, outputs: Any, rows: torch.Tensor) -> None:
        super().__init__()
        self._outputs = outputs
        self._rows = rows

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        def pick(value: Any) -> Any:
            return value.index_select(0, self._rows) if isinstance(value, torch.Tensor) else value

        if isinstance(self._outputs, tuple):
            return tuple(pick(v) for v in self._outputs)
        return type(self._outputs)(**{k: pick(v) for k, v in self._outputs.items()})


class MultiLoraModel:
    """The base encoder loaded once, serving any number of LoRA adapters per batch (a `Backend`)."""

    backend = "torch"

    def __init__(
        self,
        base_model: str = "sentence-transformers/all-MiniLM-L6-v2",
        device: str = "cpu",
        max_length: int = 128,
        dtype: torch.dtype | None = None,
    ) -> None:
        from loradock.adapters.base import base_info, load_classifier, load_tokenizer

        self.device = device
        self.dtype = dtype or (
            torch.float32 if device == "cpu" else (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
        )
        self.max_length = max_length
        info = base_info(base_model)
        self.base_model = base_model
        self.fingerprint: str = info["base_fingerprint"]
        # The pooler and encoder come from the checkpoint; the placeholder head is never used.
        full = load_classifier(base_model, ["unused"])
        full.to(device=device, dtype=self.dtype).eval()  # type: ignore[call-arg]
        self._full = full
        self.encoder = full.base_model  # e.g. BertModel, with its pooler
        self.model_type: str = full.config.model_type
        # DistilBERT and ModernBERT take no token_type_ids.
        self._inputs = set(TEXT_INPUTS) & set(inspect.signature(self.encoder.forward).parameters)
        self.tokenizer: PreTrainedTokenizerBase = load_tokenizer(base_model)
        self._state = _BatchState()
        self._wrapped: set[str] = set()
        # Set once a mixed batch met a shared input: then rows run one forward per adapter.
        self.per_adapter_forward = False

    @property
    def name(self) -> str:
        return self.backend

    def bind_metrics(self, registry: CollectorRegistry) -> None:
        """No counters of its own: the engine's cache and batch metrics cover this backend."""

    def describe(self, adapter: Any) -> dict[str, Any]:
        """What `/v1/domains` shows for an adapter on this backend."""
        return {"backend": self.backend}

    # -- adapters ------------------------------------------------------------

    def check_modules(self, weights: AdapterWeights) -> None:
        """Refuse an adapter whose LoRA targets do not exist as Linears of this base."""
        for path, (a, b) in weights.lora.items():
            try:
                module = self._full.get_submodule(path)
            except AttributeError:
                raise AdapterLoadError(
                    f"{weights.ref} targets {path}, which this base does not have; "
                    "serve it on the base it was trained on."
                ) from None
            linear = module.base if path in self._wrapped else module
            if (
                not isinstance(linear, nn.Linear)
                or linear.in_features != a.shape[1]
                or linear.out_features != b.shape[0]
            ):
                raise AdapterLoadError(f"{weights.ref}: LoRA shapes for {path} do not fit this base.")
        self._check_head(weights)

    def _check_head(self, weights: AdapterWeights) -> None:
        """Every head tensor must exist in this base's classifier with its shape (label rows aside)."""
        from loradock.adapters.architectures import head_modules

        from ..weights import FINAL_LINEAR

        params = dict(self._full.named_parameters())
        for name, tensor in weights.head.items():
            have = params.get(name)
            if have is None:
                raise AdapterLoadError(
                    f"{weights.ref}: head tensor {name} does not exist in this base's "
                    f"{self.model_type} classifier; serve it on the base it was trained on."
                )
            label_rows = name.rsplit(".", 1)[0] in FINAL_LINEAR  # sized by the domain's labels
            if (tuple(have.shape[1:]) if label_rows else tuple(have.shape)) != (
                tuple(tensor.shape[1:]) if label_rows else tuple(tensor.shape)
            ):
                raise AdapterLoadError(
                    f"{weights.ref}: head tensor {name} has shape {tuple(tensor.shape)}, "
                    f"this base expects {tuple(have.shape)}."
                )
        saved = {name.split(".")[0] for name in weights.head}
        missing = [m for m in head_modules(self._full.config) if m not in saved]
        if missing:  # those layers would be the placeholder's random ones: wrong answers, not an error
            raise AdapterLoadError(
                f"{weights.ref} does not carry its {', '.join(missing)} head layers (a "
                f"{self.model_type} head needs them); retrain it with this version of loradock."
            )

    def _wrap(self, path: str) -> None:
        if path in self._wrapped:
            return
        parent_path, _, child = path.rpartition(".")
        parent = self._full.get_submodule(parent_path)
        setattr(parent, child, BatchedLoraLinear(getattr(parent, child), path, self._state))
        self._wrapped.add(path)

    def prepare(self, weights: AdapterWeights) -> AdapterWeights:
        """`weights` on this model's device and dtype, checked against the base."""
        self.check_modules(weights)
        return weights.to(self.device, self.dtype)

    # -- inference -----------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated to max_length."""
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]

    def _collate(self, rows: Sequence[Sequence[int]]) -> dict[str, torch.Tensor]:
        names = [n for n in TEXT_INPUTS if n in self._inputs]
        batch = pad_batch(rows, self.tokenizer.pad_token_id or 0, names)
        return {k: torch.from_numpy(v).to(self.device) for k, v in batch.items()}

    def _stacks(self, unique: list[AdapterWeights], index: torch.Tensor | None) -> dict[str, _Stack]:
        paths = sorted({p for w in unique for p in w.lora})
        stacks = {}
        for path in paths:
            self._wrap(path)
            present = [w.lora.get(path) for w in unique]
            ranks = [p[0].shape[0] for p in present if p is not None]
            some = next(p for p in present if p is not None)
            r_max, d_in, d_out = max(ranks), some[0].shape[1], some[1].shape[0]
            if len(unique) == 1:
                stacks[path] = _Stack(some[0].unsqueeze(0), some[1].unsqueeze(0), None)
                continue
            a = torch.zeros((len(unique), r_max, d_in), device=self.device, dtype=self.dtype)
            b = torch.zeros((len(unique), d_out, r_max), device=self.device, dtype=self.dtype)
            for slot, pair in enumerate(present):
                if pair is not None:  # an adapter that skips this module keeps zeros: no change
                    r = pair[0].shape[0]
                    a[slot, :r] = pair[0]
                    b[slot, :, :r] = pair[1]
            stacks[path] = _Stack(a, b, index)
        return stacks

    def run(self, rows: Sequence[Sequence[int]], adapters: Sequence[AdapterWeights]) -> list[torch.Tensor]:
        """Logits per row (float32, on CPU), row i through adapters[i] and its head."""
        slots, unique = adapter_slots(adapters)
        index = None
        if len(unique) > 1:
            index = torch.tensor([slots[w.sha256] for w in adapters], device=self.device)
        groups = [[i for i, a in enumerate(adapters) if slots[a.sha256] == slot] for slot in range(len(unique))]
        if index is not None and self.per_adapter_forward:
            return self._run_per_adapter(rows, adapters, groups)
        batch = self._collate(rows)
        out: list[torch.Tensor | None] = [None] * len(rows)
        with torch.inference_mode():
            self._state.stacks = self._stacks(unique, index)
            try:
                outputs = self.encoder(**batch)
            except _SharedInput as shared:
                log.info(
                    "%s feeds %s one input for all rows; mixed batches run one forward per adapter",
                    self.model_type,
                    shared,
                )
                self.per_adapter_forward = True
                return self._run_per_adapter(rows, adapters, groups)
            finally:
                self._state.stacks = {}
            for members, w in zip(groups, unique):
                logits = self._head(outputs, batch, members, w).float().cpu()
                for j, i in enumerate(members):
                    out[i] = logits[j]
        return out  # type: ignore[return-value]

    def _run_per_adapter(
        self, rows: Sequence[Sequence[int]], adapters: Sequence[AdapterWeights], groups: list[list[int]]
    ) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(rows)
        for members in groups:
            for i, logits in zip(members, self.run([rows[i] for i in members], [adapters[i] for i in members])):
                out[i] = logits
        return out  # type: ignore[return-value]

    def _head(
        self, outputs: Any, batch: dict[str, torch.Tensor], members: list[int], w: AdapterWeights
    ) -> torch.Tensor:
        """Logits of rows `members` through `w`'s head, from the shared encoder outputs."""
        pooled = getattr(outputs, "pooler_output", None)
        if self.model_type == "bert" and w.linear_head and pooled is not None:
            return pooled[members] @ w.head_weight.T + w.head_bias  # the common case, without the detour
        from torch.func import functional_call

        rows = torch.tensor(members, device=self.device)
        prefix = self._full.base_model_prefix
        setattr(self._full, prefix, _Replay(outputs, rows))
        try:
            kwargs = {k: v.index_select(0, rows) for k, v in batch.items()}
            return functional_call(self._full, w.head, args=(), kwargs=kwargs, strict=False).logits
        finally:
            setattr(self._full, prefix, self.encoder)

"""Reading a registered PEFT LoRA folder into plain tensors: what the server batches and the edge
bundle stacks, so a served and a bundled adapter are the same numbers.

Which tensors are LoRA pairs, which are the head and how B is scaled all come from the
registry's `AdapterConfig` (registry/adapter_config.py), the rules register checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loradock.registry import AdapterVersion, InvalidAdapterError
from loradock.registry.adapter_config import FINAL_LINEAR, read_adapter_config

from .errors import AdapterWeightsError

if TYPE_CHECKING:
    import torch

__all__ = ["FINAL_LINEAR", "AdapterWeights", "read_adapter"]


@dataclass
class AdapterWeights:
    """One adapter version as tensors: LoRA pairs per module, scaling folded into B, and its head.

    `head` holds every saved head tensor by its path in the classifier (e.g.
    `classifier.dense.weight`, `pre_classifier.weight`, `head.norm.weight`);
    `head_weight`/`head_bias` are its last Linear, the whole head when
    `linear_head` is true (BERT: a Linear on the pooler output).
    """

    sha256: str
    ref: str
    labels: list[str]
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]]  # module path -> (A [r, in], B*scale [out, r])
    head_weight: torch.Tensor  # [num_labels, hidden]
    head_bias: torch.Tensor  # [num_labels]
    file_bytes: int
    extra: dict[str, object] = field(default_factory=dict)
    head: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def linear_head(self) -> bool:
        """True when the head is one Linear (BERT's `classifier` on the pooler output)."""
        return set(self.head) <= {"classifier.weight", "classifier.bias", "score.weight", "score.bias"}

    @property
    def rank(self) -> int:
        return max((a.shape[0] for a, _ in self.lora.values()), default=0)

    def to(self, device: str, dtype: torch.dtype) -> AdapterWeights:
        """A copy on `device` in `dtype` (the same tensors when nothing changes)."""

        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype)

        return AdapterWeights(
            self.sha256,
            self.ref,
            self.labels,
            {k: (move(a), move(b)) for k, (a, b) in self.lora.items()},
            move(self.head_weight),
            move(self.head_bias),
            self.file_bytes,
            self.extra,
            {k: move(t) for k, t in self.head.items()},
        )


def read_adapter(version: AdapterVersion, folder: Path) -> AdapterWeights:
    """The LoRA and head tensors of `version`, read straight from its safetensors file."""
    from safetensors.torch import load_file

    try:  # messages name the version, never a path on this machine (they reach API clients)
        config = read_adapter_config(folder, where=version.ref)
        weights_file = folder / "adapter_model.safetensors"
        tensors = load_file(str(weights_file))
        layout = config.layout(tensors, version.ref)
    except InvalidAdapterError as exc:
        raise AdapterWeightsError(str(exc)) from None
    if layout.final is None:  # a CAUSAL_LM adapter: these tensors feed a classification head
        raise AdapterWeightsError(
            f"{version.ref} is a {version.task} adapter (PEFT task_type {config.task_type}); it has no "
            "classification head to serve or bundle. Load it with PEFT on its causal base."
        )
    head = {name: tensors[key].float().contiguous() for name, key in layout.head.items()}
    lora = {}
    for module, keys in layout.lora.items():
        a, b = tensors[keys["A"]].float(), tensors[keys["B"]].float()
        # Scale B in place: a second copy per tensor showed up as resident memory per adapter.
        lora[module] = (a.contiguous(), b.mul_(config.scaling(module, a.shape[0])).contiguous())
    weight = head[f"{layout.final}.weight"]
    bias = head.get(f"{layout.final}.bias", weight.new_zeros(weight.shape[0]))
    if weight.shape[0] != len(version.labels):
        raise AdapterWeightsError(
            f"{version.ref}: head has {weight.shape[0]} outputs but {len(version.labels)} labels."
        )
    return AdapterWeights(
        version.sha256,
        version.ref,
        list(version.labels),
        lora,
        weight.contiguous(),
        bias.contiguous(),
        weights_file.stat().st_size,
        head=head,
    )

"""Reading a registered PEFT LoRA folder into plain tensors the batched model can use."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from loradock.registry import AdapterVersion

from .errors import AdapterLoadError

if TYPE_CHECKING:
    import torch

_PREFIX = "base_model.model."
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")
_HEAD_NAMES = ("classifier", "score")
# The head's last Linear (what maps features to labels), per head layout: BERT-style, RoBERTa/ELECTRA-style.
FINAL_LINEAR = ("classifier", "classifier.out_proj", "score")
# PEFT features whose maths differ from plain `x + B(A(x)) * scale`; refused rather than served wrong.
_UNSUPPORTED = ("use_dora", "lora_bias", "fan_in_fan_out", "use_qalora", "use_bdlora")


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
            self.sha256, self.ref, self.labels,
            {k: (move(a), move(b)) for k, (a, b) in self.lora.items()},
            move(self.head_weight), move(self.head_bias), self.file_bytes, self.extra,
            {k: move(t) for k, t in self.head.items()},
        )


def _scaling(config: dict, module: str, rank: int) -> float:
    alpha = config.get("lora_alpha", rank)
    for pattern, value in (config.get("alpha_pattern") or {}).items():
        if re.search(rf"(^|\.){pattern}$", module):
            alpha = value
    return alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank


def read_adapter(version: AdapterVersion, folder: Path) -> AdapterWeights:
    """The LoRA and head tensors of `version`, read straight from its safetensors file."""
    from safetensors.torch import load_file

    config = json.loads((folder / "adapter_config.json").read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise AdapterLoadError(f"{version.ref} is a {config.get('peft_type')} adapter; only LoRA is served.")
    for flag in _UNSUPPORTED:
        if config.get(flag):
            raise AdapterLoadError(f"{version.ref} uses {flag}={config[flag]!r}, which the server does not apply; "
                                   "merge it with 'adapters merge' and serve the merged model instead.")
    weights_file = folder / "adapter_model.safetensors"
    tensors = load_file(str(weights_file))
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    head: dict[str, torch.Tensor] = {}
    # Head modules are the adapter's modules_to_save (RoBERTa's two-layer classifier, DistilBERT's
    # pre_classifier, DeBERTa's pooler, ModernBERT's head) plus PEFT's SEQ_CLS defaults.
    head_roots = set(_HEAD_NAMES) | set(config.get("modules_to_save") or [])
    for key, tensor in tensors.items():
        name = key[len(_PREFIX):] if key.startswith(_PREFIX) else key
        match = _LORA_KEY.match(name)
        if match:
            pairs.setdefault(match["module"], {})[match["ab"]] = tensor.float()
        elif name.split(".")[0].endswith(tuple(head_roots)) and name.endswith((".weight", ".bias")):
            # PEFT matches modules_to_save by suffix: "classifier" also saves DistilBERT's pre_classifier.
            head[name] = tensor.float().contiguous()
        else:
            raise AdapterLoadError(f"{version.ref} holds tensor {key!r} the server cannot apply; "
                                   "only LoRA query/value-style pairs and a classification head are served.")
    lora = {}
    for module, ab in pairs.items():
        if set(ab) != {"A", "B"}:
            raise AdapterLoadError(f"{version.ref}: module {module} lacks lora_A or lora_B; re-register the adapter.")
        rank = ab["A"].shape[0]
        # Scale B in place: a second copy per tensor showed up as resident memory per adapter.
        lora[module] = (ab["A"].contiguous(), ab["B"].mul_(_scaling(config, module, rank)).contiguous())
    final = next((m for m in FINAL_LINEAR if f"{m}.weight" in head), None)
    if final is None:
        raise AdapterLoadError(f"{version.ref} has no classification head (classifier.weight); "
                               "train it with task_type SEQ_CLS so the head is saved.")
    weight = head[f"{final}.weight"]
    bias = head.get(f"{final}.bias", weight.new_zeros(weight.shape[0]))
    if weight.shape[0] != len(version.labels):
        raise AdapterLoadError(f"{version.ref}: head has {weight.shape[0]} outputs but {len(version.labels)} labels.")
    return AdapterWeights(version.sha256, version.ref, list(version.labels), lora, weight.contiguous(),
                          bias.contiguous(), weights_file.stat().st_size, head=head)

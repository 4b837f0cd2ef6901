"""A generation run's recipe: LoRA targets from the base's modules, epochs and max_length from the data.

Defaults, and why:

- targets q_proj, k_proj, v_proj, o_proj: every attention projection of a Llama-family
  base (SmolLM2, Llama, Qwen2, Mistral); adapting all four, not only q/v (PEFT's own
  default), is what QLoRA-style recipes do for causal LMs, at 4 x r x hidden
  parameters per layer. A base without those names gets PEFT's table for its
  model_type (GPT-2: c_attn), else every Linear under an attention module.
- r 8, alpha 16 (scale 2): PEFT/TRL's usual LoRA pair; dropout 0.05 as in TRL's examples.
- lr 2e-4: the rate TRL's docs give for LoRA (ten times the full fine-tuning one).
- epochs: TRL's 3, raised until the run has MIN_STEPS optimizer steps (a small set in 3
  epochs is a handful of steps, which moves LoRA's B matrices very little), at most
  MAX_EPOCHS; one epoch once an epoch alone is LARGE_EPOCH_STEPS steps.
- max_length: the longest training row (prompt and completion, template included), in
  steps of 32, capped at 512 and at the base's positions: a generation row cut short
  loses the end of its answer and its EOS, which is what teaches the model to stop, so
  the rule keeps whole rows where it can, unlike classification's 95th percentile.
Explicit options win, then a domain's own recipe values, then these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from loradock.adapters.errors import TrainingOptionsError
from loradock.registry.domains import GENERATION_RECIPE

if TYPE_CHECKING:
    import torch

DEFAULT_LR = 2e-4
DEFAULT_EPOCHS = 3
MIN_STEPS, MAX_EPOCHS, LARGE_EPOCH_STEPS = 60, 10, 1000
WARMUP_RATIO = 0.1
WEIGHT_DECAY = 0.0  # LoRA's few weights: no decay, as in PEFT's and TRL's examples
GRAD_CLIP = 1.0
LENGTH_STEP, MIN_AUTO_LENGTH = 32, 32
MAX_AUTO_LENGTH = GENERATION_RECIPE.max_length  # 512


@dataclass(frozen=True)
class GenerationRecipe:
    """Epochs, rate and max_length for one run, with the numbers that chose them."""

    epochs: int
    lr: float
    max_length: int
    rows: int
    steps_per_epoch: int
    longest_row: int
    warmup_ratio: float = WARMUP_RATIO

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return (
            f"{self.epochs} epochs x {self.steps_per_epoch} steps at lr {self.lr:g} (from {self.rows} rows), "
            f"max_length {self.max_length} (the longest row is {self.longest_row} tokens)"
        )


def choose_epochs(steps_per_epoch: int) -> int:
    if steps_per_epoch >= LARGE_EPOCH_STEPS:
        return 1
    return min(MAX_EPOCHS, max(DEFAULT_EPOCHS, math.ceil(MIN_STEPS / steps_per_epoch)))


def choose_max_length(lengths: Sequence[int], position_limit: int | None = None) -> int:
    longest = max(lengths) if lengths else 0
    length = min(MAX_AUTO_LENGTH, max(MIN_AUTO_LENGTH, LENGTH_STEP * math.ceil(longest / LENGTH_STEP)))
    return min(length, position_limit) if position_limit else length


def choose(
    rows: int,
    batch_size: int,
    lengths: Sequence[int],
    *,
    epochs: int | None = None,
    lr: float | None = None,
    max_length: int | None = None,
    position_limit: int | None = None,
) -> GenerationRecipe:
    """The recipe for `rows` training rows of `lengths` tokens; given values win over the rules."""
    steps = max(1, math.ceil(rows / batch_size))
    return GenerationRecipe(
        epochs=epochs or choose_epochs(steps),
        lr=lr or DEFAULT_LR,
        max_length=max_length or choose_max_length(lengths, position_limit),
        rows=rows,
        steps_per_epoch=steps,
        longest_row=max(lengths) if lengths else 0,
    )


def lora_targets(model: torch.nn.Module, requested: Sequence[str]) -> list[str]:
    """The modules LoRA adapts: `requested` if it is not the default, else the default's names where the base
    has them, PEFT's table for its model_type, or every Linear under an attention module."""
    import torch
    from transformers.pytorch_utils import Conv1D

    linear = {n: n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, Conv1D))}
    leaves = set(linear.values())
    if tuple(requested) != GENERATION_RECIPE.target_modules or set(requested) <= leaves:
        return list(requested)
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as TABLE

    mapped = TABLE.get(getattr(model.config, "model_type", ""), [])
    if mapped and set(mapped) <= leaves:
        return list(mapped)
    attention = sorted({leaf for name, leaf in linear.items() if "attn" in name or "attention" in name})
    if attention:
        return attention
    raise TrainingOptionsError(
        f"Cannot tell the attention projections of this base (linear layers: {', '.join(sorted(leaves))}); "
        "pick the modules to adapt with --target-modules."
    )

"""The model a run trains: the base's classifier with LoRA attached, or the whole classifier for --full."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from loradock.adapters.base import load_classifier
from loradock.adapters.errors import TrainingOptionsError
from loradock.adapters.training.options import TrainOptions
from loradock.adapters.training.prepare import Prepared

if TYPE_CHECKING:
    import torch


def build_model(prep: Prepared, options: TrainOptions) -> torch.nn.Module:
    """The classifier over `prep.domain`'s labels; wrapped in LoRA unless `options.full`."""
    import torch

    torch.manual_seed(options.seed)  # head init and LoRA A init
    model = load_classifier(prep.args["base"], prep.domain.labels, prep.base["base_revision"])
    model.name_or_path = model.config._name_or_path = prep.base["base_model"]  # PEFT writes it into adapter_config
    if options.full:
        return model
    from peft import LoraConfig, TaskType, get_peft_model

    from loradock.adapters.architectures import head_modules, lora_targets

    # "query,value" is a role: each architecture names (or fuses) its projections differently,
    # and heads with layers the base lacks (RoBERTa, DistilBERT, DeBERTa, ModernBERT) must be saved whole.
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=prep.recipe.r,
        lora_alpha=prep.recipe.alpha,
        lora_dropout=prep.recipe.dropout,
        target_modules=lora_targets(model.config, prep.recipe.target_modules),
        modules_to_save=head_modules(model.config),
    )
    try:
        with warnings.catch_warnings():
            # transformers' own deprecation, raised from inside PEFT; nothing a user can act on
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            return get_peft_model(model, config)
    except ValueError as exc:  # e.g. target modules the base does not have
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise TrainingOptionsError(
            f"Cannot attach LoRA to {prep.args['base']!r} with target modules {list(prep.recipe.target_modules)} "
            f"({str(exc).split('.')[0]}); its linear layers are: {', '.join(linear)}. Pick from those with --target-modules."
        ) from None


def param_counts(model: torch.nn.Module) -> dict[str, Any]:
    """Trainable and total parameters, and the trainable share in percent."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"trainable_params": trainable, "total_params": total, "trainable_pct": 100.0 * trainable / total}

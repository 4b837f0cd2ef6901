"""Per-architecture module names: where LoRA goes for a role, and which modules make the head.

A domain's `target_modules` default ("query,value") is a *role*, not a module
name: BERT calls its projections `query`/`value`, DistilBERT `q_lin`/`v_lin`,
DeBERTa-v2/v3 `query_proj`/`value_proj`, and ModernBERT fuses all three into
one `Wqkv` Linear (so "query,value" there adapts the fused projection). Names
that are not role words pass through unchanged, so `--target-modules q_lin,lin1`
works on any base.

The head is what `AutoModelForSequenceClassification` adds on top of the
encoder, i.e. the weights the base checkpoint does not hold. They must be
trained and saved with the adapter (PEFT `modules_to_save`), or a reload draws
them at random again: RoBERTa's `classifier` is two Linears, DistilBERT adds
`pre_classifier`, DeBERTa a `pooler`, ModernBERT a `head` (dense + norm).
BERT's pooler comes with the base checkpoint, so only `classifier` is saved.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from loradock.adapters.errors import AdaptersError

log = logging.getLogger(__name__)

ROLE_WORDS = ("query", "key", "value")
DEFAULT_ROLE = "query,value"

# model_type -> role word -> module name (checked against transformers 5.x modeling code).
_BERT_STYLE = {"query": "query", "key": "key", "value": "value"}
_TARGETS: dict[str, dict[str, str]] = {
    "bert": _BERT_STYLE,
    "roberta": _BERT_STYLE,
    "xlm-roberta": _BERT_STYLE,
    "camembert": _BERT_STYLE,
    "electra": _BERT_STYLE,
    "distilbert": {"query": "q_lin", "key": "k_lin", "value": "v_lin"},
    "deberta-v2": {"query": "query_proj", "key": "key_proj", "value": "value_proj"},
    # Fused q/k/v projections: any of the three roles adapts the one Linear.
    "deberta": {"query": "in_proj", "key": "in_proj", "value": "in_proj"},
    "modernbert": {"query": "Wqkv", "key": "Wqkv", "value": "Wqkv"},
}

# model_type -> the sequence-classification head's top-level modules (not in the base checkpoint).
_HEADS: dict[str, list[str]] = {
    "bert": ["classifier"],
    "roberta": ["classifier"],  # RobertaClassificationHead: dense + out_proj
    "xlm-roberta": ["classifier"],
    "camembert": ["classifier"],
    "electra": ["classifier"],  # ElectraClassificationHead: dense + out_proj
    "distilbert": ["pre_classifier", "classifier"],
    "deberta-v2": ["pooler", "classifier"],  # ContextPooler.dense
    "deberta": ["pooler", "classifier"],
    "modernbert": ["head", "classifier"],  # ModernBertPredictionHead: dense + norm
}

SUPPORTED = tuple(sorted(_TARGETS))


class UnknownArchitectureError(AdaptersError, ValueError):
    """A role like "query,value" asked of an architecture whose module names we do not know."""


def model_type(config: Any) -> str:
    """The `model_type` of a transformers config, a config dict, a model, or the type string itself."""
    if isinstance(config, str):
        return config
    if isinstance(config, Mapping):
        return str(config.get("model_type") or "")
    inner = getattr(config, "config", None)  # a model
    if inner is not None and not isinstance(config, Mapping) and hasattr(inner, "model_type"):
        return str(inner.model_type or "")
    return str(getattr(config, "model_type", "") or "")


def _split(role: str | list[str] | tuple[str, ...]) -> list[str]:
    parts = role.split(",") if isinstance(role, str) else list(role)
    return [p.strip() for p in parts if p and p.strip()]


def is_role(role: str | list[str] | tuple[str, ...]) -> bool:
    """True when `role` holds a role word (query/key/value) to be mapped, not only module names."""
    return any(p in ROLE_WORDS for p in _split(role))


def lora_targets(config: Any, role: str | list[str] | tuple[str, ...] = DEFAULT_ROLE) -> list[str]:
    """The module names LoRA should adapt on this architecture for `role`.

    Role words (query, key, value) map to the architecture's names; anything else
    is taken as a module name and passes through unchanged. Order is kept,
    duplicates (fused projections) are dropped.
    """
    parts = _split(role)
    if not parts:
        raise UnknownArchitectureError(f"No target modules in {role!r}; pass e.g. --target-modules query,value.")
    kind = model_type(config)
    table = _TARGETS.get(kind)
    names: list[str] = []
    for part in parts:
        if part in ROLE_WORDS:
            if table is None:
                raise UnknownArchitectureError(
                    f"Architecture {kind or '(no model_type)'!r} has no known module names for the role "
                    f"{','.join(parts)!r} (known: {', '.join(SUPPORTED)}); pass its Linear module names "
                    "explicitly with --target-modules, e.g. --target-modules q_proj,v_proj."
                )
            part = table[part]
        if part not in names:
            names.append(part)
    return names


def head_modules(config: Any) -> list[str]:
    """The classification head's module names, for PEFT `modules_to_save`."""
    kind = model_type(config)
    if kind in _HEADS:
        return list(_HEADS[kind])
    return _heads_from_class(config, kind)


def _heads_from_class(config: Any, kind: str) -> list[str]:
    """An unlisted architecture: the classifier's own top-level modules, found on the meta device."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForSequenceClassification, PretrainedConfig

        cfg = config if isinstance(config, PretrainedConfig) else getattr(config, "config", None)
        if cfg is None:
            cfg = AutoConfig.for_model(kind, **{k: v for k, v in dict(config).items() if k != "model_type"})
        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(cfg)
    except Exception as exc:  # no classification class for this type: the PEFT default is all we know
        log.warning("no sequence-classification head known for %r (%s); saving 'classifier' only", kind, exc)
        return ["classifier"]
    prefix = model.base_model_prefix
    return [
        name for name, module in model.named_children() if name != prefix and any(True for _ in module.parameters())
    ] or ["classifier"]


def describe_targets(config: Any, role: str | list[str] | tuple[str, ...] = DEFAULT_ROLE) -> str:
    """One line for `adapters show`: the role and the module names it means on this base."""
    names = lora_targets(config, role)
    role_text = ",".join(_split(role))
    if not is_role(role):
        return ", ".join(names)
    return f"{role_text} (role) -> {', '.join(names)} on {model_type(config)}"


def recorded_targets(role: Any, modules: Any) -> str:
    """`adapters show`: the role training was asked for and the module names it became on the base."""
    names = ", ".join(sorted(modules)) if isinstance(modules, (list, tuple, set)) else str(modules or "-")
    if role and is_role(role):
        return f"{','.join(_split(role))} (role) -> {names}"
    return names

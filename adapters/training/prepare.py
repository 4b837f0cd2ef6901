"""Everything decided before a model loads: domain, data and eval split, base, recipe, run folder; then the token ids.

prepare() raises on bad data, a base that cannot read the chosen length, or
a --resume with nothing to resume, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loradock.adapters import data as datamod
from loradock.adapters.base import base_info, load_tokenizer
from loradock.adapters.errors import NoCheckpointError, TrainingOptionsError
from loradock.adapters.registration import identify_base
from loradock.adapters.training import checkpoints
from loradock.adapters.training.options import (
    BEST_METRIC,
    DEFAULT_EVAL_FRACTION,
    FULL_FINETUNE_LR,
    GRAD_CLIP,
    WEIGHT_DECAY,
    TrainOptions,
)
from loradock.adapters.training.recipe import Recipe
from loradock.adapters.training.recipe import choose as choose_recipe
from loradock.adapters.training.tokenized import token_counts, tokenize
from loradock.registry import Domain, LoraRecipe, Registry
from loradock.registry.errors import UnknownDomainError

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything decided before a model loads."""

    domain: Domain
    recipe: LoraRecipe
    train: datamod.LabelledData
    eval: datamod.LabelledData
    base: dict[str, Any]
    args: dict[str, Any]
    data_meta: dict[str, Any]
    run_folder: Path
    cache: Path
    tokenizer: Any  # the base's, loaded once: it counts the texts' lengths and tokenizes them
    new_domain: bool = False  # stored only when the version is registered

    @property
    def epochs(self) -> int:
        """The epochs to run: prepare() replaced the recipe's None (choose from the data) with a number."""
        assert self.recipe.epochs is not None
        return self.recipe.epochs


def prepare(registry: Registry, domain_name: str, options: TrainOptions) -> Prepared:
    """Resolve defaults and check data and base; raises before any training starts."""
    domain, new_domain = _domain(registry, domain_name, options)
    recipe = options.recipe(domain.recipe)
    source = options.data or domain.dataset or f"embedded:{domain.name}"
    train_data, eval_data = _load_data(source, domain, options)
    datamod.check_trainable(train_data)
    base_name = options.base or domain.base_model
    base = base_info(base_name, domain.base_revision if options.base is None else None)
    # A local --base folder is recorded by its Hub id when its weights are known, so a push can be pulled.
    identity = identify_base(base_name, base["base_revision"], registry)
    base.update(identity.record(), provenance=identity.provenance())
    runs = checkpoints.run_dir(registry.home, domain.name, "*")
    if options.resume and not any(runs.parent.glob(runs.name)):  # nothing to resume: say so before tokenizing
        raise _no_checkpoint(domain.name, runs)
    # Epochs, rate, warm-up and max_length from the data where neither the run nor the domain set them.
    tokenizer = load_tokenizer(base_name, base["base_revision"]) if _length_from_data(options, domain) else None
    lengths = _train_lengths(registry, tokenizer, base, train_data) if tokenizer is not None else None
    chosen = choose_recipe(len(train_data), len(domain.labels), recipe.batch_size, lengths, _position_limit(base))
    recipe = dataclasses.replace(
        recipe,
        epochs=recipe.epochs or chosen.epochs,
        lr=recipe.lr or chosen.lr,
        max_length=chosen.max_length or recipe.max_length,
    )
    _check_max_length(base, recipe.max_length)
    args = _train_args(options, recipe, chosen, base_name)
    data_meta = _data_meta(source, train_data, eval_data, options)
    run_folder = _run_folder(registry, domain, args, train_data, eval_data, base)
    found = any(run_folder.glob("checkpoint-*")) if options.run_loop == "trainer" else checkpoints.latest(run_folder)
    if options.resume and not found:
        raise _no_checkpoint(domain.name, run_folder)
    return Prepared(
        domain,
        recipe,
        train_data,
        eval_data,
        base,
        args,
        data_meta,
        run_folder,
        registry.home / "cache",
        tokenizer or load_tokenizer(base_name, base["base_revision"]),
        new_domain,
    )


def token_ids(prep: Prepared) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The training and eval texts' unpadded token ids at the recipe's max_length (cached)."""
    max_length = prep.recipe.max_length
    train_ids = tokenize(prep.tokenizer, prep.train.texts, prep.train.fingerprint, max_length, prep.cache)
    eval_ids = tokenize(prep.tokenizer, prep.eval.texts, prep.eval.fingerprint, max_length, prep.cache)
    return train_ids, eval_ids


def _domain(registry: Registry, domain_name: str, options: TrainOptions) -> tuple[Domain, bool]:
    """The registered domain, or a new one (not stored yet) with the labels of --data; True when new."""
    try:
        return registry.domain(domain_name), False
    except UnknownDomainError:
        if not options.data:
            raise
        labels = datamod.infer_labels(options.data, split=options.split, **_columns(options))
        domain = Domain(name=domain_name, labels=labels, description=f"Created from {options.data}")
        log.info("new domain %s with labels from the data: %s", domain_name, ", ".join(labels))
        return domain, True


def _columns(options: TrainOptions) -> dict[str, str]:
    return {"text_column": options.text_column, "label_column": options.label_column}


def _load_data(source: str, domain: Domain, options: TrainOptions) -> tuple[datamod.LabelledData, datamod.LabelledData]:
    """(train, eval): --eval-data when given, else a seeded split of `source`."""
    full_data = datamod.load(source, domain.labels, split=options.split, **_columns(options))
    if options.eval_data:
        return full_data, datamod.load(options.eval_data, domain.labels, split=options.eval_split, **_columns(options))
    fraction = options.eval_fraction if options.eval_fraction is not None else DEFAULT_EVAL_FRACTION
    return datamod.split_eval(full_data, fraction, options.seed)


def _train_args(options: TrainOptions, recipe: LoraRecipe, chosen: Recipe, base_name: str) -> dict[str, Any]:
    """The version's train_args: the recipe and every setting that decides the result."""
    lr = options.lr if options.lr is not None else (FULL_FINETUNE_LR if options.full else recipe.lr)
    args: dict[str, Any] = {
        **recipe.to_dict(),
        "lr": lr,
        "seed": options.seed,
        "full": options.full,
        "eval_fraction": None if options.eval_data else (options.eval_fraction or DEFAULT_EVAL_FRACTION),
        "eval_data": options.eval_data,
        "split": options.split,
        "optimizer": "adamw",
        "weight_decay": WEIGHT_DECAY,
        "warmup_ratio": chosen.warmup_ratio,
        "scheduler": "linear",
        "grad_clip": GRAD_CLIP,
        "recipe_rule": chosen.to_dict(),
        "base": base_name,
        "padding": "dynamic, length-grouped",
        "patience": options.run_patience,
        "best_metric": BEST_METRIC,
        "loop": options.run_loop,
    }
    if options.full:
        for key in ("r", "alpha", "dropout", "target_modules"):
            args.pop(key)
    return args


def _data_meta(
    source: str, train_data: datamod.LabelledData, eval_data: datamod.LabelledData, options: TrainOptions
) -> dict[str, Any]:
    return {
        "source": source,
        "fingerprint": train_data.fingerprint,
        "train_size": len(train_data),
        "eval_size": len(eval_data),
        "text_column": options.text_column,
        "label_column": options.label_column,
        "eval_source": eval_data.source,
        "eval_fingerprint": eval_data.fingerprint,
        "train_counts": train_data.counts(),
        "eval_counts": eval_data.counts(),
    }


def _run_folder(
    registry: Registry,
    domain: Domain,
    args: dict[str, Any],
    train_data: datamod.LabelledData,
    eval_data: datamod.LabelledData,
    base: dict[str, Any],
) -> Path:
    """The run's checkpoint folder, keyed by everything that decides the result."""
    key = checkpoints.run_key(
        {
            "domain": domain.name,
            "args": args,
            "train": train_data.fingerprint,
            "eval": eval_data.fingerprint,
            "base": base["base_fingerprint"],
            "labels": list(domain.labels),
        }
    )
    return checkpoints.run_dir(registry.home, domain.name, key)


def _position_limit(base: dict[str, Any]) -> int | None:
    """How many positions the base reads (config.json's max_position_embeddings), if it says."""
    config_path = Path(base["local_path"]) / "config.json"
    limit = json.loads(config_path.read_text()).get("max_position_embeddings") if config_path.is_file() else None
    return limit if isinstance(limit, int) and limit > 0 else None


def _check_max_length(base: dict[str, Any], max_length: int) -> None:
    """Longer than the base's position table would crash mid-training; refuse it now."""
    limit = _position_limit(base)
    if limit is not None and max_length > limit:
        raise TrainingOptionsError(
            f"max_length {max_length} exceeds what base {base['base_model']!r} can read ({limit} positions); "
            f"pass --max-length {limit} or less."
        )


def _no_checkpoint(domain: str, where: Path) -> NoCheckpointError:
    return NoCheckpointError(
        f"No interrupted run of {domain!r} with these settings to resume ({where} holds no checkpoint); "
        "run again without --resume, or with exactly the options of the interrupted run."
    )


def _length_from_data(options: TrainOptions, domain: Domain) -> bool:
    """Whether max_length is the data's to choose: the run's --max-length wins, then a domain's own (any value
    but LoraRecipe's default, see recipe.py)."""
    return options.max_length is None and domain.recipe.max_length == LoraRecipe().max_length


def _train_lengths(
    registry: Registry, tokenizer: Any, base: dict[str, Any], train_data: datamod.LabelledData
) -> np.ndarray:
    """Token counts of the training texts, counted up to the base's position limit (the choice is clamped to
    it anyway)."""
    return token_counts(
        tokenizer, train_data.texts, train_data.fingerprint, _position_limit(base), registry.home / "cache"
    )

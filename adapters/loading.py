"""Loading a registered version onto its base, refusing a base it was not trained on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loradock.adapters.base import fingerprint, load_classifier, load_tokenizer, resolve_base
from loradock.adapters.errors import BaseModelError, WrongTaskError
from loradock.registry import CLASSIFICATION, AdapterVersion, Registry

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedTokenizerBase


@dataclass
class LoadedVersion:
    version: AdapterVersion
    model: PeftModel
    tokenizer: PreTrainedTokenizerBase


def check_base(version: AdapterVersion, base: str | None = None) -> str:
    """The base to load `version` on; refuses one whose weights differ from training."""
    name = base or version.base_model
    if not name:
        raise BaseModelError(f"{version.ref} records no base model; pass --base.")
    folder = resolve_base(name, version.base_revision if base is None else None)
    if version.base_fingerprint and fingerprint(folder) != version.base_fingerprint:
        raise BaseModelError(
            f"Base {name!r} has fingerprint {fingerprint(folder)[:19]} but {version.ref} was trained on "
            f"{version.base_fingerprint[:19]}; load it on the base it was trained on."
        )
    return name


def load_version(
    registry: Registry, ref: str, device: str = "cpu", base: str | None = None, **model_kwargs: Any
) -> LoadedVersion:
    """A PEFT model for `DOMAIN@REF`, in eval mode on `device`."""
    from peft import PeftModel

    version = registry.resolve(ref)
    if version.task != CLASSIFICATION:  # a CAUSAL_LM adapter on a classifier would load and answer nonsense
        raise WrongTaskError(
            f"{version.ref} is a {version.task} version; this command loads classifiers. Its eval loss and "
            f"perplexity are in: adapters show {version.ref}. To generate, load it with PEFT on its base: "
            "PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(BASE), adapters path REF)."
        )
    name = check_base(version, base)
    folder = registry.path(version.ref)
    model = load_classifier(name, version.labels, version.base_revision if base is None else None, **model_kwargs)
    peft_model = PeftModel.from_pretrained(model, str(folder))
    peft_model.to(device).eval()
    return LoadedVersion(version, peft_model, load_tokenizer(name, version.base_revision if base is None else None))

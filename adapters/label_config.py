"""Label names next to the weights: a `config.json` beside `adapter_config.json`.

PEFT never changes the base's config, so `PeftModel.from_pretrained(base, folder)`
names labels only if `base` was built with them. transformers reads them from a
folder's or Hub repo's `config.json` (`AutoConfig.from_pretrained(folder)`), so
training and export write one: the base's config plus `id2label`/`label2id`, and
`architectures` naming the classification class (the base's own config says
`BertModel`). tests/adapters/test_labels_plain_peft.py loads a folder exactly as README shows.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import PretrainedConfig

MODEL_CONFIG = "config.json"


def classifier_config(model: Any) -> PretrainedConfig:
    """A copy of the (PEFT-wrapped or plain) classifier's config that names its class and its labels."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = copy.deepcopy(inner.config)
    config.architectures = [type(inner).__name__]
    return config


def save_label_config(model: Any, folder: Path | str) -> Path:
    """Write config.json (base config, label names, classification architecture) into `folder`."""
    classifier_config(model).save_pretrained(str(folder))
    return Path(folder) / MODEL_CONFIG

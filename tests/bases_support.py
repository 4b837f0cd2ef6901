"""Tiny randomly initialised encoders of every supported architecture, saved as `--base` folders.

Each folder holds the bare encoder (as a Hub checkpoint does: no classification
head) and the embedded MiniLM WordPiece tokenizer, whose vocabulary every tiny
config here is sized for. Nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

# Tiny sizes: two layers, 32 wide. pad/cls/sep ids are the MiniLM tokenizer's ([PAD]=0, [CLS]=101, [SEP]=102).
_COMMON: dict[str, Any] = {"vocab_size": 30522, "pad_token_id": 0}
_BERT_LIKE = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 130,
}
ARCHITECTURES: dict[str, tuple[str, dict[str, Any]]] = {
    "bert": ("bert", _BERT_LIKE),
    "roberta": ("roberta", {**_BERT_LIKE, "type_vocab_size": 1, "bos_token_id": 101, "eos_token_id": 102}),
    "xlm-roberta": ("xlm-roberta", {**_BERT_LIKE, "type_vocab_size": 1, "bos_token_id": 101, "eos_token_id": 102}),
    "distilbert": (
        "distilbert",
        {"dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 2, "max_position_embeddings": 130},
    ),
    "deberta-v2": ("deberta-v2", {**_BERT_LIKE, "type_vocab_size": 0}),
    "deberta-v3": (
        "deberta-v2",
        {
            **_BERT_LIKE,
            "type_vocab_size": 0,
            "relative_attention": True,
            "position_buckets": 16,
            "max_relative_positions": -1,
            "norm_rel_ebd": "layer_norm",
            "pos_att_type": ["p2c", "c2p"],
            "position_biased_input": False,
            "share_att_key": True,
        },
    ),
    "electra": ("electra", {**_BERT_LIKE, "embedding_size": 16}),
    "modernbert": (
        "modernbert",
        {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "max_position_embeddings": 130,
            "bos_token_id": 101,
            "eos_token_id": 102,
            "cls_token_id": 101,
            "sep_token_id": 102,
            "global_attn_every_n_layers": 2,
            "local_attention": 16,
        },
    ),
}
# Architectures whose forward takes no token_type_ids: their tokenizers must not produce them.
_NO_TOKEN_TYPES = {"distilbert", "modernbert"}


# Heads a base checkpoint may carry (people start from fine-tuned checkpoints): the auto class that saves each.
HEADS = {
    "sequence-classification": "AutoModelForSequenceClassification",
    "masked-lm": "AutoModelForMaskedLM",
    "token-classification": "AutoModelForTokenClassification",
}


def build_tiny_base(name: str, folder: Path, seed: int = 0, head: str | None = None, num_labels: int = 2) -> Path:
    """Save a tiny random `name` encoder plus a tokenizer into `folder` (a usable `--base`).

    With `head` (a key of HEADS) the checkpoint is saved with that head on top,
    e.g. a 2-label `RobertaForSequenceClassification`, as a fine-tuned model is.
    """
    import torch
    import transformers
    from transformers import AutoConfig, AutoModel

    from loradock.adapters.base import resolve_base
    from loradock.registry import DEFAULT_BASE

    model_type, sizes = ARCHITECTURES[name]
    torch.manual_seed(seed)
    config = AutoConfig.for_model(model_type, **_COMMON, **sizes, num_labels=num_labels)
    folder.mkdir(parents=True, exist_ok=True)
    auto = getattr(transformers, HEADS[head]) if head else AutoModel
    auto.from_config(config).save_pretrained(str(folder), safe_serialization=True)
    source = resolve_base(DEFAULT_BASE)
    for file in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (source / file).is_file():
            shutil.copy(source / file, folder / file)
    if model_type in _NO_TOKEN_TYPES:
        tok_config = json.loads((folder / "tokenizer_config.json").read_text())
        tok_config["model_input_names"] = ["input_ids", "attention_mask"]
        (folder / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2))
    return folder

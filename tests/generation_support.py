"""A tiny chat tokenizer and a tiny random Llama, for generation tests that need no real model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

# A ChatML template like SmolLM2's (without its default system prompt).
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
WORDS = (
    *NUMBERS,
    *("what", "is", "plus", "minus", "the", "answer", "question", "please", "tell", "me", "?", "."),
    *("system", "user", "assistant", "you", "add", "numbers", "a", "long", "prompt", "word"),
)
SPECIALS = ("<unk>", "<pad>", "<|im_start|>", "<|im_end|>")


def build_tiny_tokenizer(chat_template: str | None = CHAT_TEMPLATE) -> Any:
    """A word-level fast tokenizer over WORDS; EOS is <|im_end|>, as in SmolLM2."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate((*SPECIALS, *WORDS))}
    raw = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def build_tiny_llama(folder: Path, seed: int = 0, chat_template: str | None = CHAT_TEMPLATE) -> Path:
    """Save a 2-layer, 32-wide random LlamaForCausalLM and the tiny tokenizer into `folder`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tiny_tokenizer(chat_template)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    folder.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(config).save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


def arithmetic_rows(n: int = 12) -> list[tuple[str, str]]:
    """(prompt, completion) pairs in the tiny vocabulary."""
    rows = []
    for i in range(n):
        a, b = i % 5, (i * 3) % 5
        rows.append((f"what is {NUMBERS[a]} plus {NUMBERS[b]} ?", f"the answer is {NUMBERS[a + b]} ."))
    return rows


def write_prompt_completion(path: Path, n: int = 12) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for prompt, completion in arithmetic_rows(n):
            fh.write(json.dumps({"prompt": prompt, "completion": " " + completion}) + "\n")
    return path


def write_messages(path: Path, n: int = 12) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for prompt, completion in arithmetic_rows(n):
            messages = [
                {"role": "system", "content": "you add numbers ."},
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": completion},
            ]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


@pytest.fixture(scope="module", name="tiny_llama")
def tiny_llama_fixture(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random Llama folder with a chat template, usable as `--base`."""
    return str(build_tiny_llama(tmp_path_factory.mktemp("tiny-llama")))

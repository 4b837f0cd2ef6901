"""Generation data in TRL's standard formats, read once, then tokenized with a completion-only loss mask.

Two formats, detected from the rows (TRL's "prompt-completion" and "conversational"):

- JSONL `{"prompt": "...", "completion": "..."}` (or a CSV with `--prompt-column` and
  `--completion-column`): the prompt's tokens, then the completion's and EOS, as TRL
  concatenates them; the loss covers the completion and EOS (TRL's completion_only_loss).
- JSONL `{"messages": [{"role": "user", "content": "..."}, ...]}`: rendered with the
  base's chat template; the loss covers each assistant turn as the template writes it,
  end-of-turn token included, so the adapter learns to stop (TRL's assistant_only_loss).

Every row is checked before a model loads; bad rows are reported together, by line
number. Labels are -100 wherever the loss does not look.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loradock.adapters.errors import DataError

log = logging.getLogger(__name__)

PROMPT_COMPLETION = "prompt-completion"
MESSAGES = "messages"
ROLES = ("system", "user", "assistant")
IGNORE_INDEX = -100  # what torch's cross-entropy skips
MAX_SHOWN = 10  # bad rows listed in one message; the count covers the rest
SUFFIXES = (".jsonl", ".json", ".csv")


@dataclass(frozen=True)
class Example:
    """One training row: a prompt and its completion, or a conversation of (role, content) turns."""

    line: int
    prompt: str | None = None
    completion: str | None = None
    messages: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        if self.messages:
            return {"messages": [{"role": r, "content": c} for r, c in self.messages]}
        return {"prompt": self.prompt, "completion": self.completion}


@dataclass(frozen=True)
class GenerationData:
    """Rows of one format from one source; `fingerprint` hashes their content (not their line numbers)."""

    examples: tuple[Example, ...]
    format: str
    source: str
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            text = json.dumps([e.to_json() for e in self.examples], sort_keys=True, ensure_ascii=False)
            object.__setattr__(self, "fingerprint", "sha256:" + hashlib.sha256(text.encode()).hexdigest())

    def __len__(self) -> int:
        return len(self.examples)

    def subset(self, indices: Sequence[int], source: str) -> GenerationData:
        return GenerationData(tuple(self.examples[i] for i in indices), self.format, source)

    def write_jsonl(self, path: Path) -> Path:
        """The rows as JSONL in their own format (the version's eval split artifact)."""
        with open(path, "w", encoding="utf-8") as fh:
            for example in self.examples:
                fh.write(json.dumps(example.to_json(), ensure_ascii=False) + "\n")
        return path


def split_eval(data: GenerationData, fraction: float, seed: int) -> tuple[GenerationData, GenerationData]:
    """(train, eval): a seeded shuffle, at least one row on each side."""
    if len(data) < 2:
        raise DataError(
            f"{data.source} has {len(data)} row; holding out an eval split needs at least 2. "
            "Add rows, or pass --eval-data FILE."
        )
    order = list(range(len(data)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(data) - 1, max(1, round(len(data) * fraction)))
    eval_idx, train_idx = sorted(order[:n_eval]), sorted(order[n_eval:])
    return data.subset(train_idx, data.source), data.subset(eval_idx, f"{data.source} (held out {fraction:g})")


def load(source: str | Path, prompt_column: str = "prompt", completion_column: str = "completion") -> GenerationData:
    """Read a .jsonl (prompt/completion or messages rows) or .csv (two named columns) file; DataError on bad rows."""
    path = Path(source).expanduser()
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"Generation data {str(source)!r} must be a .jsonl file (prompt/completion or messages rows) "
            "or a .csv with --prompt-column and --completion-column."
        )
    if not path.is_file():
        raise DataError(f"No data file {str(source)!r}: pass --data with a .jsonl or .csv file.")
    if path.suffix.lower() == ".csv":
        examples, bad = _read_csv(path, prompt_column, completion_column)
        fmt = PROMPT_COMPLETION
    else:
        examples, bad, fmt = _read_jsonl(path)
    if bad:
        shown = "\n".join(f"  line {line}: {reason}" for line, reason in bad[:MAX_SHOWN])
        more = f"\n  ... and {len(bad) - MAX_SHOWN} more" if len(bad) > MAX_SHOWN else ""
        raise DataError(f"{path} has {len(bad)} bad row(s); fix or remove them and run again:\n{shown}{more}")
    if not examples:
        raise DataError(f"{path} holds no rows: add prompt/completion or messages rows.")
    return GenerationData(tuple(examples), fmt, str(path))


def _read_jsonl(path: Path) -> tuple[list[Example], list[tuple[int, str]], str]:
    examples: list[Example] = []
    bad: list[tuple[int, str]] = []
    fmt: str | None = None
    first_line = 0
    for line_no, text in _lines(path):
        try:
            row = json.loads(text)
        except ValueError as exc:
            bad.append((line_no, f"not valid JSON ({str(exc)[:80]})"))
            continue
        if not isinstance(row, dict):
            bad.append((line_no, f"expected a JSON object, got {type(row).__name__}"))
            continue
        row_fmt = MESSAGES if "messages" in row else PROMPT_COMPLETION if {"prompt", "completion"} & set(row) else None
        if row_fmt is None:
            keys = ", ".join(sorted(map(str, row))[:8]) or "none"
            bad.append((line_no, f"no 'messages' and no 'prompt'/'completion' keys (keys: {keys})"))
            continue
        if fmt is None:
            fmt, first_line = row_fmt, line_no
        elif row_fmt != fmt:
            bad.append((line_no, f"a {row_fmt} row in a file of {fmt} rows (from line {first_line}); use one format"))
            continue
        example, reason = _messages_row(row, line_no) if row_fmt == MESSAGES else _pc_row(row, line_no)
        if reason:
            bad.append((line_no, reason))
        elif example is not None:
            examples.append(example)
    return examples, bad, fmt or PROMPT_COMPLETION


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as fh:
            for line_no, text in enumerate(fh, start=1):
                if text.strip():
                    yield line_no, text
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8.") from None


def _pc_row(row: dict[str, Any], line: int) -> tuple[Example | None, str]:
    for key in ("prompt", "completion"):
        if key not in row:
            return None, f"missing key {key!r}"
        if not isinstance(row[key], str):
            return None, f"{key!r} must be a string, got {type(row[key]).__name__} {_short(row[key])}"
    if not row["completion"].strip():
        return None, "empty completion (nothing to learn)"
    return Example(line, prompt=row["prompt"], completion=row["completion"]), ""


def _messages_row(row: dict[str, Any], line: int) -> tuple[Example | None, str]:
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        return None, f"'messages' must be a non-empty list of {{role, content}} objects, got {_short(messages)}"
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            return None, f"message {i} must be an object with 'role' and 'content', got {_short(message)}"
        role, content = message["role"], message["content"]
        if role not in ROLES:
            return None, f"message {i} has unknown role {_short(role)} (use {', '.join(ROLES)})"
        if not isinstance(content, str):
            return None, f"message {i} ({role}) content must be a string, got {type(content).__name__}"
        if role == "assistant" and not content.strip():
            return None, f"message {i} (assistant) has empty content (an empty completion)"
        turns.append((role, content))
    if not any(role == "assistant" for role, _ in turns):
        return None, "no assistant message (nothing to learn)"
    return Example(line, messages=tuple(turns)), ""


def _read_csv(path: Path, prompt_column: str, completion_column: str) -> tuple[list[Example], list[tuple[int, str]]]:
    examples: list[Example] = []
    bad: list[tuple[int, str]] = []
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            columns = reader.fieldnames or []
            missing = [c for c in (prompt_column, completion_column) if c not in columns]
            if missing:
                raise DataError(
                    f"{path} has no column {missing[0]!r} (columns: {', '.join(columns) or 'none'}); "
                    "name the right ones with --prompt-column and --completion-column."
                )
            for row in reader:
                line = reader.line_num
                prompt, completion = row.get(prompt_column), row.get(completion_column)
                if prompt is None or completion is None:
                    bad.append((line, f"fewer fields than the header's {len(columns)}"))
                elif not completion.strip():
                    bad.append((line, f"empty {completion_column!r} (an empty completion)"))
                else:
                    examples.append(Example(line, prompt=prompt, completion=completion))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8.") from None
    return examples, bad


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- tokens and the loss mask ------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """One row's token ids and labels (IGNORE_INDEX where the loss does not look), before truncation.

    `prompt_tokens` counts the tokens before the first trained one.
    """

    input_ids: list[int]
    labels: list[int]
    line: int = 0
    prompt_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)

    def truncated(self, max_length: int) -> Encoded:
        return replace(self, input_ids=self.input_ids[:max_length], labels=self.labels[:max_length])


def encode(tokenizer: Any, example: Example) -> Encoded:
    """Token ids and completion-only labels of `example` (not truncated)."""
    if example.messages:
        return _encode_messages(tokenizer, example)
    prompt = _ids(tokenizer, example.prompt or "", special=True) if example.prompt else []
    completion = _ids(tokenizer, example.completion or "", special=False)
    if tokenizer.eos_token_id is not None:
        completion.append(int(tokenizer.eos_token_id))  # the model learns to stop, as TRL appends EOS
    return Encoded(prompt + completion, [IGNORE_INDEX] * len(prompt) + completion, example.line, len(prompt))


def _ids(tokenizer: Any, text: str, *, special: bool) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=special)["input_ids"]]


def _render(tokenizer: Any, turns: Sequence[tuple[str, str]], generation_prompt: bool) -> str:
    messages = [{"role": role, "content": content} for role, content in turns]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return str(text)


def _encode_messages(tokenizer: Any, example: Example) -> Encoded:
    """The conversation as the chat template renders it, trained on each assistant turn only.

    Each assistant turn is what rendering the conversation up to it adds after the
    generation prompt (its content and end-of-turn marker). The pieces are tokenized
    one by one, so the mask is exact; the first prompt is tokenized as a whole, as at
    inference.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(
            f"Line {example.line} is a messages row, but the base's tokenizer has no chat template; "
            "use a chat base (e.g. the default SmolLM2-135M-Instruct) or prompt/completion rows."
        )
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    prompt_tokens: int | None = None
    for i, (role, _content) in enumerate(example.messages):
        if role != "assistant":
            continue
        before = _render(tokenizer, example.messages[:i], generation_prompt=True)
        after = _render(tokenizer, example.messages[: i + 1], generation_prompt=False)
        if not before.startswith(done) or not after.startswith(before):
            raise DataError(
                f"Line {example.line}: the base's chat template does not render a conversation turn by turn "
                "(an earlier turn changes when a later one is added), so its assistant tokens cannot be told "
                "apart. Use prompt/completion rows, or a base whose template appends turns."
            )
        context = _ids(tokenizer, before[len(done) :], special=False)
        answer = _ids(tokenizer, after[len(before) :], special=False)
        ids += context
        labels += [IGNORE_INDEX] * len(context)
        if prompt_tokens is None:
            prompt_tokens = len(ids)
        ids += answer
        labels += answer
        done = after
    return Encoded(ids, labels, example.line, prompt_tokens or 0)


def encode_all(tokenizer: Any, data: GenerationData) -> list[Encoded]:
    return [encode(tokenizer, example) for example in data.examples]


def check_trainable(encoded: Sequence[Encoded], max_length: int, source: str) -> list[Encoded]:
    """The rows truncated to `max_length` that still train on something; DataError when none do.

    Two causes are told apart: a mask that is empty before any truncation (the
    template writes no assistant tokens, or completions tokenize to nothing), and
    completions that all start past `max_length`.
    """
    if not encoded:
        raise DataError(f"{source} has no rows to train on.")
    if all(e.trained_tokens == 0 for e in encoded):
        raise DataError(
            f"The loss mask is empty for every row of {source}: no completion or assistant token is trained on, "
            "so training would learn nothing. Check that completions are not blank and that the base's chat "
            "template writes the assistant turns (or use prompt/completion rows)."
        )
    kept = [t for t in (e.truncated(max_length) for e in encoded) if t.trained_tokens > 0]
    if not kept:
        shortest = min(e.prompt_tokens for e in encoded)
        longest = max(len(e.input_ids) for e in encoded)
        raise DataError(
            f"Every completion in {source} is cut off by --max-length {max_length}: the shortest prompt is "
            f"{shortest} tokens, so no completion token is left to train on. Pass --max-length "
            f"{_round_up(longest)} (the longest row is {longest} tokens), or shorten the prompts."
        )
    cut = sum(1 for e in encoded if len(e.input_ids) > max_length)
    if len(kept) < len(encoded):
        log.warning(
            "%d of %d rows of %s lose their whole completion at max_length %d and are left out",
            len(encoded) - len(kept),
            len(encoded),
            source,
            max_length,
        )
    elif cut:
        log.info("%d of %d rows of %s are truncated at max_length %d", cut, len(encoded), source, max_length)
    return kept


def _round_up(n: int, step: int = 32) -> int:
    return step * math.ceil(n / step)


def collate(rows: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad a batch of {input_ids, labels}: pad tokens get attention 0 and label IGNORE_INDEX."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        ids[i, :n] = torch.tensor(row["input_ids"], dtype=torch.long)
        labels[i, :n] = torch.tensor(row["labels"], dtype=torch.long)
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}

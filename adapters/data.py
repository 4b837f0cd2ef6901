"""Labelled text for training and evaluation: where it comes from and whether it fits a domain.

Sources: `embedded:DOMAIN` (the samples shipped in `adapters/samples/`),
`hf:NAME[:CONFIG][@REVISION]` (through `datasets`, with a split), and local
`.csv`, `.jsonl`/`.json` or `.parquet` files. Every check happens here, before
any model is loaded, so bad data never costs a training run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loradock.adapters.errors import DataError
from loradock.registry import json_files

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parent / "samples"
EMBEDDED = "embedded:"
HF = "hf:"
FILE_SUFFIXES = (".csv", ".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class LabelledData:
    """Texts with label indices into `label_names`, and where they came from."""

    source: str
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    label_names: tuple[str, ...]
    text_column: str = "text"
    label_column: str = "label"

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def fingerprint(self) -> str:
        """sha256 over the texts and label names, in order: same rows, same fingerprint."""
        digest = hashlib.sha256()
        for text, label in zip(self.texts, self.labels):
            digest.update(json.dumps([text, self.label_names[label]]).encode())
            digest.update(b"\n")
        return "sha256:" + digest.hexdigest()

    def counts(self) -> dict[str, int]:
        seen = Counter(self.labels)
        return {name: seen.get(i, 0) for i, name in enumerate(self.label_names)}

    def subset(self, indices: Sequence[int], source: str | None = None) -> LabelledData:
        return LabelledData(
            source=source or self.source,
            texts=tuple(self.texts[i] for i in indices),
            labels=tuple(self.labels[i] for i in indices),
            label_names=self.label_names,
            text_column=self.text_column,
            label_column=self.label_column,
        )

    def rows(self) -> list[dict[str, str]]:
        """`{"text", "label"}` rows with label names: the eval artifact's format."""
        return [{"text": t, "label": self.label_names[y]} for t, y in zip(self.texts, self.labels)]


# -- reading rows ------------------------------------------------------------


def parse_hf(source: str) -> tuple[str, str | None, str | None]:
    """`hf:NAME[:CONFIG][@REVISION]` -> (name, config, revision)."""
    spec = source[len(HF) :]
    spec, _, revision = spec.partition("@")
    name, _, config = spec.partition(":")
    if not name:
        raise DataError(f"Data source {source!r} names no dataset: use hf:NAME[:CONFIG][@REVISION], e.g. hf:imdb.")
    return name, config or None, revision or None


def _read_hf(source: str, split: str) -> list[dict[str, Any]]:
    name, config, revision = parse_hf(source)
    try:
        import datasets
    except ImportError:  # pragma: no cover - a declared dependency
        raise DataError("Reading hf: sources needs the `datasets` package: pip install datasets.") from None
    try:
        ds = datasets.load_dataset(name, config, split=split, revision=revision)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise DataError(f"Dataset {source!r} has no split {split!r} ({exc}); pick one with --split.") from None
        raise DataError(f"Cannot load dataset {source!r}: {exc}") from None
    except Exception as exc:
        raise DataError(
            f"Cannot load dataset {source!r} ({type(exc).__name__}: {exc}); check the name, or go online once "
            "so the datasets cache holds it."
        ) from None
    rows = ds.to_list()
    # ClassLabel columns hold integers; hand back their names so labels are checked by name.
    for column, feature in getattr(ds, "features", {}).items():
        names = getattr(feature, "names", None)
        if names:
            for row in rows:
                if isinstance(row.get(column), int) and 0 <= row[column] < len(names):
                    row[column] = names[row[column]]
    return rows


def _read_file(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as fh:
                return list(csv.DictReader(fh))
        if suffix in (".jsonl", ".json"):
            text = path.read_text(encoding="utf-8")
            if suffix == ".json" and text.lstrip().startswith("["):
                rows = json_files.loads(text)
            else:
                rows = [json_files.loads(line) for line in text.splitlines() if line.strip()]
            if not all(isinstance(r, dict) for r in rows):
                raise DataError(f'{path}: every row must be a JSON object like {{"text": ..., "label": ...}}.')
            return rows
        if suffix == ".parquet":
            import pandas as pd

            return pd.read_parquet(path).to_dict("records")
    except (ValueError, csv.Error, UnicodeDecodeError, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"Cannot read {path} ({type(exc).__name__}: {exc}).") from None
    raise DataError(f"Unsupported data file {path}: use one of {', '.join(FILE_SUFFIXES)} or hf:NAME.")


def read_rows(source: str, split: str = "train") -> list[dict[str, Any]]:
    """The raw rows of a data source, as dicts."""
    if source.startswith(EMBEDDED):
        name = source[len(EMBEDDED) :]
        path = SAMPLES / f"{name}.jsonl"
        if not path.is_file():
            known = sorted(p.stem for p in SAMPLES.glob("*.jsonl"))
            raise DataError(f"No embedded sample {name!r} (have: {', '.join(known)}); pass --data PATH or hf:NAME.")
        return _read_file(path)
    if source.startswith(HF):
        return _read_hf(source, split)
    path = Path(source).expanduser()
    if not path.is_file():
        raise DataError(
            f"Data file {source!r} does not exist: pass a CSV/JSONL/Parquet path, hf:NAME or embedded:DOMAIN."
        )
    return _read_file(path)


# -- checking against a domain ------------------------------------------------


def _label_name(value: Any, label_names: Sequence[str]) -> str | None:
    """A row's label as a domain label name; integers count as indices."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        index = int(value)
        return label_names[index] if 0 <= index < len(label_names) else None
    text = str(value).strip()
    if text in label_names:
        return text
    if text.lstrip("-").isdigit():
        return _label_name(int(text), label_names)
    return None


UNKNOWN_LABELS = (
    "Data source {source!r} has {count} label(s) the domain does not know: {shown}. The domain's labels are: "
    "{known}. Fix the data's labels, or, while the domain has no versions, widen it: "
    "adapters domains edit DOMAIN --labels {all}; or train a new domain that takes its labels from the data: "
    "adapters train NEWDOMAIN --data ..."
)


def to_labelled(
    rows: list[dict[str, Any]],
    label_names: Sequence[str],
    source: str,
    text_column: str = "text",
    label_column: str = "label",
) -> LabelledData:
    """Check rows against the domain's labels; raise DataError naming the first problem."""
    if not rows:
        raise DataError(f"Data source {source!r} holds no rows; pass data with at least one example per label.")
    columns = set().union(*(r.keys() for r in rows[:100]))
    for column, option in ((text_column, "--text-column"), (label_column, "--label-column")):
        if column not in columns:
            raise DataError(
                f"Data source {source!r} has no column {column!r} (columns: {', '.join(sorted(map(str, columns)))}); "
                f"name the right one with {option}."
            )
    texts: list[str] = []
    labels: list[int] = []
    unknown: Counter[str] = Counter()
    index = {name: i for i, name in enumerate(label_names)}
    for row in rows:
        text = row.get(text_column)
        if text is None or not str(text).strip():
            continue  # empty texts teach nothing; dropping them keeps real datasets usable
        name = _label_name(row.get(label_column), label_names)
        if name is None:
            unknown[str(row.get(label_column))] += 1
            continue
        texts.append(str(text))
        labels.append(index[name])
    if unknown:
        raise DataError(
            UNKNOWN_LABELS.format(
                source=source,
                count=len(unknown),
                shown=", ".join(f"{k!r} ({unknown[k]} rows)" for k in sorted(unknown)),
                known=", ".join(label_names),
                all=",".join([*label_names, *sorted(unknown)]),
            )
        )
    if not texts:
        raise DataError(f"Data source {source!r} has no non-empty texts in column {text_column!r}.")
    return LabelledData(source, tuple(texts), tuple(labels), tuple(label_names), text_column, label_column)


def _sort_key(label: str) -> tuple[int, float, str]:
    """Numbers in numeric order (2 before 10), then names alphabetically."""
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def infer_labels(
    source: str, *, text_column: str = "text", label_column: str = "label", split: str = "train"
) -> tuple[str, ...]:
    """The sorted distinct labels of a data source's rows that have text, for a domain made from data."""
    rows = read_rows(source, split)
    if rows and label_column not in set().union(*(r.keys() for r in rows[:100])):
        columns = ", ".join(sorted(map(str, set().union(*(r.keys() for r in rows[:100])))))
        raise DataError(
            f"Data source {source!r} has no column {label_column!r} (columns: {columns}); "
            "name the right one with --label-column."
        )
    seen = {
        str(r.get(label_column)).strip()
        for r in rows
        if r.get(label_column) is not None and str(r.get(text_column) or "").strip()
    }
    seen.discard("")
    if len(seen) < 2:
        raise DataError(
            f"Data source {source!r} has {len(seen)} distinct label(s) in column {label_column!r} "
            f"({', '.join(sorted(seen)) or 'none'}); a classifier needs at least 2."
        )
    return tuple(sorted(seen, key=_sort_key))


def load(
    source: str,
    label_names: Sequence[str],
    *,
    text_column: str = "text",
    label_column: str = "label",
    split: str = "train",
) -> LabelledData:
    """Read a source and check it against `label_names`."""
    rows = read_rows(source, split)
    shown = f"{source} [{split}]" if source.startswith(HF) else source
    return to_labelled(rows, label_names, shown, text_column, label_column)


def split_eval(data: LabelledData, fraction: float, seed: int) -> tuple[LabelledData, LabelledData]:
    """A stratified (train, eval) split: every label keeps its share on both sides."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"eval fraction must be in (0, 1), got {fraction}.")
    rng = random.Random(seed)
    by_label: dict[int, list[int]] = {}
    for i, y in enumerate(data.labels):
        by_label.setdefault(y, []).append(i)
    train_idx: list[int] = []
    eval_idx: list[int] = []
    for y in sorted(by_label):
        members = by_label[y][:]
        rng.shuffle(members)
        # A label with 2+ rows keeps at least one on each side.
        cut = round(len(members) * fraction)
        cut = min(max(cut, 1), len(members) - 1) if len(members) > 1 else 0
        eval_idx.extend(members[:cut])
        train_idx.extend(members[cut:])
    if not eval_idx:
        raise DataError(f"{data.source!r} is too small to hold out an eval split; pass --eval-data.")
    return data.subset(sorted(train_idx)), data.subset(sorted(eval_idx), source=f"{data.source} (held out)")


def check_trainable(train: LabelledData) -> None:
    """A training set must show the model more than one label."""
    present = {train.label_names[y] for y in set(train.labels)}
    if len(present) < 2:
        raise DataError(
            f"Training data {train.source!r} holds only label {', '.join(sorted(present))!r}; a classifier needs "
            f"examples of at least two of: {', '.join(train.label_names)}."
        )
    missing = [n for n in train.label_names if n not in present]
    if missing:
        log.warning("training data has no examples of %s; the adapter will never predict them", ", ".join(missing))


def write_jsonl(data: LabelledData, path: Path) -> Path:
    """Write `{"text", "label"}` rows, one JSON object per line."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in data.rows())
    return path

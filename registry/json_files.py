"""Reading JSON files a user hands us (adapter_config.json, config.json): every failure is a ValueError.

`json.loads` of deeply nested input (200,000 `[`) raises RecursionError, which is
not a ValueError, so callers that refuse malformed JSON would let it escape as a
traceback. Every reader of an untrusted JSON file goes through here instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class JSONFileError(ValueError):
    """A JSON file that cannot be read or parsed; the message says why."""


def loads(text: str | bytes) -> Any:
    """`json.loads`, with too-deep nesting refused as a ValueError like any other malformed JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise JSONFileError("nested too deeply to parse") from None


def read_json(path: Path) -> Any:
    """The parsed content of the UTF-8 JSON file at `path`; JSONFileError for bad text or bad JSON."""
    try:
        return loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise JSONFileError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise JSONFileError(str(exc)) from None

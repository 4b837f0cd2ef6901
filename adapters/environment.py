"""What a run records about the software it ran on."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

LIBRARIES = (
    "loradock",
    "torch",
    "transformers",
    "peft",
    "tokenizers",
    "safetensors",
    "onnx",
    "onnxruntime",
    "onnxscript",
)


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """Python's version and each installed library's; missing ones are left out."""
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found

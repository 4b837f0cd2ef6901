"""loradock: keep, ship and serve LoRA adapters, one per domain, on one base model.

The repository keeps its folders at the top (`registry/`, `adapters/`, `serving/`,
`cli/`); they install as `loradock.registry`, `loradock.adapters`, `loradock.serving`
and `loradock.cli`, so site-packages gains only this one name.
"""

__version__ = "0.2.0"

# The SDK, imported on first use so `import loradock` stays light (no httpx, no torch).
_LAZY = {
    "Client": "loradock.client",
    "load": "loradock.sdk",
    "Classifier": "loradock.sdk",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'loradock' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

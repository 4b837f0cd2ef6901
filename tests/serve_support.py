"""Helpers for the serving tests: register real PEFT adapters on the embedded base, run a server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loradock.registry import DEFAULT_BASE, PRESETS, Registry, VersionInfo

DOMAIN_SEEDS = {"medical": 1, "education": 2, "sentiment": 3}
TEXTS = [
    "Crushing chest pain radiating to the left arm since this morning.",
    "Solve for x: the derivative of x squared plus three x.",
    "A warm, funny and moving film; I loved every minute.",
    "itchy rash",
    "The treaty ended the war in 1648 and redrew the map of Europe for a century.",
    "Dull.",
    "Shortness of breath and wheezing at night, worse after exercise and cold air.",
]


def offline(mp: Any) -> None:
    """No Hub calls, even from module-scoped fixtures set up before the autouse isolation."""
    import huggingface_hub.constants

    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def base_fingerprint() -> str:
    from loradock.adapters.base import base_info

    return base_info(DEFAULT_BASE)["base_fingerprint"]


def register(
    registry: Registry,
    make_peft_folder: Callable[..., Any],
    domain: str,
    seed: int,
    r: int = 8,
    aliases: tuple[str, ...] = ("production",),
    fingerprint: str | None = None,
) -> Any:
    folder = make_peft_folder(labels=PRESETS[domain].labels, seed=seed, r=r)
    info = VersionInfo(base_model=DEFAULT_BASE, base_fingerprint=fingerprint or base_fingerprint())
    return registry.register(domain, folder, info, aliases=list(aliases))


def register_presets(
    registry: Registry, make_peft_folder: Callable[..., Any], ranks: dict[str, int] | None = None
) -> dict:
    """medical (5 labels), education (4), sentiment (2), each at @production."""
    ranks = ranks or {}
    return {d: register(registry, make_peft_folder, d, seed, r=ranks.get(d, 8)) for d, seed in DOMAIN_SEEDS.items()}


def serve_config(**overrides: Any) -> Any:
    from loradock.serving.config import ServeConfig

    values: dict[str, Any] = {
        "domains": tuple(f"{d}@production" for d in DOMAIN_SEEDS),
        "port": 0,
        "device": "cpu",
        "poll_interval": 0.2,
        "max_wait_ms": 2.0,
    }
    values.update(overrides)
    return ServeConfig(**values)


def hold_worker(engine: Any) -> tuple[Any, Any]:
    """Make the model "busy": batches wait until `gate` is set; `entered` says one is waiting."""
    import threading

    gate, entered = threading.Event(), threading.Event()
    real_run = engine.batcher._run_batch

    def held(jobs: Any) -> Any:
        entered.set()
        assert gate.wait(30), "test never opened the gate"
        return real_run(jobs)

    engine.batcher._run_batch = held
    return gate, entered

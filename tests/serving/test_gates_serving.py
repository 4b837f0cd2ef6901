"""A running server following an alias or `latest` never moves to a version that failed its gate."""

from __future__ import annotations

import pytest

from loradock.registry import DEFAULT_BASE, PRESETS, Registry, VersionInfo
from loradock.registry.errors import FailedVersionError
from loradock.registry.gates import QualityGate, check
from tests.serve_support import base_fingerprint, serve_config

pytestmark = pytest.mark.slow


def _register(registry: Registry, make_peft_folder, domain: str, seed: int, passed: bool, aliases=()) -> object:
    labels = PRESETS[domain].labels
    counts = {name: 10 for name in labels}
    metrics = {"accuracy": 0.95, "macro_f1": 0.95} if passed else {"accuracy": 1 / len(labels), "macro_f1": 0.1}
    info = VersionInfo(
        base_model=DEFAULT_BASE,
        base_fingerprint=base_fingerprint(),
        metrics=metrics,
        gate=check(metrics, counts, QualityGate()),
    )
    return registry.register(domain, make_peft_folder(labels=labels, seed=seed), info, aliases=list(aliases))


def test_server_keeps_serving_the_good_version_when_a_failed_one_arrives(registry: Registry, make_peft_folder) -> None:
    from loradock.serving.engine import ServingEngine
    from loradock.serving.watcher import RegistryWatcher

    _register(registry, make_peft_folder, "medical", 1, True, aliases=("production",))
    _register(registry, make_peft_folder, "sentiment", 3, True)
    engine = ServingEngine(serve_config(domains=("medical@production", "sentiment@latest")), registry)
    try:
        watcher = RegistryWatcher(engine, interval=60.0)  # polled by hand below
        other = Registry(registry.home)  # another process: `adapters train` registering
        bad_medical = _register(other, make_peft_folder, "medical", 11, False)
        bad_sentiment = _register(other, make_peft_folder, "sentiment", 13, False)
        with pytest.raises(FailedVersionError):
            other.set_alias("medical", "production", bad_medical.number)
        assert watcher.poll() == []
        assert engine.served["medical"].current.version.ref == "medical@1"
        assert engine.served["sentiment"].current.version.ref == "sentiment@1"
        assert bad_sentiment.number == 2

        # The watcher does follow `latest` to the next version that passes.
        _register(other, make_peft_folder, "sentiment", 14, True)
        swaps = watcher.poll()
        assert [(s["domain"], s["new"]) for s in swaps] == [("sentiment", "sentiment@3")]
        other.close()
    finally:
        engine.close()

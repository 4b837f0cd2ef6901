"""A fast in-process API for the HTTP tests: a 2-layer, 32-wide random BERT base, two domains, TestClient.

Real engine, real PEFT adapters, real routes; only the model is tiny, so thousands of
requests take seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from loradock.registry import Domain, Registry, VersionInfo

KEY = "api-test-token"
KEY_ENV = "LORADOCK_API_TEST_KEY"
DOMAINS = {"tickets": ("billing", "bug", "account"), "reviews": ("negative", "positive")}
TEXTS = ["I was charged twice this month.", "The app crashes when I open settings.", "Loved it.", "Dull."]


def tiny_registry(home: Path, work: Path) -> tuple[Registry, str]:
    """`tickets` @1 (production), @2 (staging) and `reviews` @1, all on a tiny local base."""
    from loradock.adapters.base import base_info

    from .onnx_multi_support import peft_folder, tiny_base

    base = str(tiny_base(work / "tiny-bert"))
    info = VersionInfo(base_model=base, base_fingerprint=base_info(base)["base_fingerprint"])
    registry = Registry(home)
    for seed, (domain, labels) in enumerate(DOMAINS.items()):
        registry.add_domain(Domain(name=domain, labels=labels, base_model=base))
        registry.register(
            domain, peft_folder(base, work / f"{domain}-1", labels, 4, seed=seed), info, aliases=["production"]
        )
    registry.register(
        "tickets", peft_folder(base, work / "tickets-2", DOMAINS["tickets"], 4, seed=7), info, aliases=["staging"]
    )
    return registry, base


def api_config(base: str, **overrides: Any) -> Any:
    from loradock.serving.config import ServeConfig

    values: dict[str, Any] = {
        "domains": ("tickets@production", "reviews@production"),
        "base_model": base,
        "backend": "torch",
        "device": "cpu",
        "port": 0,
        "poll_interval": 0.2,
        "max_wait_ms": 1.0,
        "max_inputs": 8,
        "max_chars": 500,
        "max_queue": 64,
        "max_body_bytes": 64 * 1024,
        "api_key_env": KEY_ENV,
    }
    values.update(overrides)
    return ServeConfig(**values)


@contextmanager
def tiny_home(tmp_path_factory: pytest.TempPathFactory, name: str = "api") -> Iterator[tuple[Registry, str]]:
    """Offline, the API key set, and a fresh tiny registry: `(registry, base)`."""
    from .serve_support import offline

    with pytest.MonkeyPatch.context() as mp:
        offline(mp)  # module fixtures run before the autouse per-test isolation
        mp.setenv(KEY_ENV, KEY)
        work = tmp_path_factory.mktemp(name)
        registry, base = tiny_registry(work / "home", work)
        try:
            yield registry, base
        finally:
            registry.close()


@contextmanager
def tiny_api(tmp_path_factory: pytest.TempPathFactory, **overrides: Any) -> Iterator[Any]:
    """A TestClient (token sent by default) over a fresh app; `.app_`, `.registry`, `.engine`, `.base` attached."""
    from fastapi.testclient import TestClient

    from loradock.serving.app import create_app

    with tiny_home(tmp_path_factory) as (registry, base):
        app = create_app(api_config(base, **overrides), registry)
        with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}, raise_server_exceptions=False) as client:
            client.app_ = app
            client.registry = registry
            client.engine = app.state.engine
            client.base = base
            yield client


def assert_envelope(response: Any, status: int) -> dict:
    """Every error: the status asked for, JSON, a non-empty `error` string, only the envelope's keys."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"], body
    assert set(body) <= {"error", "field", "detail", "served"}, body
    return body

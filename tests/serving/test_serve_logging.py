"""Issue 9's server logs and metrics: swaps, loads, evictions, refusals logged with domain and hash;
JSON lines; access log off by default; no `_created` series; the served-version gauge."""

from __future__ import annotations

import io
import json
import logging

import pytest

from loradock.registry import VersionInfo
from tests.api_support import DOMAINS, api_config, tiny_registry


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A tiny registry and an engine serving tickets@production and reviews@production (not started)."""
    from loradock.serving.engine import ServingEngine
    from tests.serve_support import offline

    offline(monkeypatch)
    registry, base = tiny_registry(tmp_path / "home", tmp_path)
    engine = ServingEngine(api_config(base, api_key_env=None), registry)
    engine.base = base
    yield engine
    registry.close()


def _records(caplog, event: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def test_a_swap_is_logged_with_domain_version_and_hash(served, caplog) -> None:
    from loradock.serving.watcher import RegistryWatcher

    watcher = RegistryWatcher(served, interval=3600)  # polled by hand
    served.registry.set_alias("tickets", "production", 2)
    v2 = served.registry.resolve("tickets@2")
    with caplog.at_level(logging.INFO, logger="loradock.serving"):
        assert [s["new"] for s in watcher.poll()] == ["tickets@2"]
    swap = _records(caplog, "swap")
    assert len(swap) == 1 and swap[0].domain == "tickets" and swap[0].sha256 == v2.sha256
    assert "swapped tickets@production: tickets@1 -> tickets@2" in swap[0].getMessage()
    assert v2.sha256[:12] in swap[0].getMessage()
    assert any(r.sha256 == v2.sha256 for r in _records(caplog, "load"))
    v1 = served.registry.resolve("tickets@1")
    evicted = _records(caplog, "evict")  # the old version is freed once nothing uses it
    assert evicted and all(r.sha256 == v1.sha256 and r.domain == "tickets" for r in evicted)


def test_refused_loads_and_gate_refusals_are_logged(served, caplog, tmp_path) -> None:
    from loradock.serving.watcher import RegistryWatcher
    from tests.onnx_multi_support import peft_folder

    watcher = RegistryWatcher(served, interval=3600)
    folder = peft_folder(served.base, tmp_path / "failed", DOMAINS["reviews"], 4, seed=31)
    version = served.registry.register(
        "reviews",
        folder,
        VersionInfo(
            base_model=served.base,
            base_fingerprint=served.model.fingerprint,
            gate={"passed": False, "reasons": ["accuracy 0.5 below 0.6"]},
        ),
    )
    unverified = served.registry.register(
        "reviews",
        peft_folder(served.base, tmp_path / "unv", DOMAINS["reviews"], 4, seed=32),
        VersionInfo(base_model=served.base),
    )
    with caplog.at_level(logging.INFO, logger="loradock.serving"):
        assert watcher.poll() == []  # `production` did not move; a failed version is never served
        with pytest.raises(Exception, match="--allow-unverified-base"):
            served.cache.lease(unverified)
    gate = _records(caplog, "gate_refused")
    assert any(r.sha256 == version.sha256 and r.domain == "reviews" for r in gate), caplog.text
    refused = _records(caplog, "refused")
    assert len(refused) == 1 and refused[0].sha256 == unverified.sha256 and refused[0].levelno == logging.WARNING


def test_json_log_lines_carry_the_fields() -> None:
    from loradock.serving.server import JsonFormatter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("loradock.serving.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "swapped %s",
            "tickets@production",
            extra={"event": "swap", "domain": "tickets", "version": "tickets@2", "sha256": "ab" * 32},
        )
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "swapped tickets@production" and line["level"] == "warning"
    assert (line["event"], line["domain"], line["version"], line["sha256"]) == (
        "swap",
        "tickets",
        "tickets@2",
        "ab" * 32,
    )
    assert "time" in line and line["logger"] == "loradock.serving.test-json"


def test_run_honours_level_format_and_access_log(monkeypatch) -> None:
    import uvicorn

    from loradock.serving import app as serving_app
    from loradock.serving import server
    from loradock.serving.config import ServeConfig

    seen: dict = {}
    monkeypatch.setattr(serving_app, "create_app", lambda config, registry: object())

    class Server:  # stands in for uvicorn's: records its config, serves nothing
        def __init__(self, config: uvicorn.Config) -> None:
            seen.update(access_log=config.access_log, log_config=config.log_config)

        def run(self) -> None:
            pass

    monkeypatch.setattr(uvicorn, "Server", Server)
    monkeypatch.setattr(server, "set_process_threads", lambda config: None)
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        server.run(ServeConfig(domains=("tickets",), log_level="warning", log_format="json", port=0))
        assert isinstance(root.handlers[-1].formatter, server.JsonFormatter) and root.level == logging.WARNING
        assert seen["access_log"] is False and seen["log_config"] is None
        server.run(ServeConfig(domains=("tickets",), access_log=True, port=0))
        assert seen["access_log"] is True and root.level == logging.INFO
        assert not isinstance(root.handlers[-1].formatter, server.JsonFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_metrics_have_no_created_series_and_name_the_served_versions(served) -> None:
    from prometheus_client import generate_latest

    served.metrics.watch_served(
        lambda: [(s.domain, s.current.version.ref, s.current.sha256) for s in served.served.values()]
    )
    served.metrics.observe_request("tickets", 200, 0.01)
    text = generate_latest(served.metrics.registry).decode()
    assert "_created" not in text and 'loradock_requests_total{domain="tickets",status="200"} 1.0' in text
    sha = served.registry.resolve("tickets@1").sha256
    assert f'loradock_served_version_info{{domain="tickets",sha256="{sha}",version="tickets@1"}} 1.0' in text
    served.registry.set_alias("tickets", "production", 2)
    served.refresh()
    text = generate_latest(served.metrics.registry).decode()
    assert 'version="tickets@2"' in text and 'version="tickets@1"' not in text

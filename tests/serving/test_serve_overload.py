"""Overload: a full queue answers 503 with Retry-After instead of growing; the server keeps serving."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from tests.serve_support import TEXTS, hold_worker, register_presets, serve_config

pytestmark = pytest.mark.slow


def test_full_queue_is_503_with_retry_after(registry, make_peft_folder) -> None:
    from loradock.serving.server import BackgroundServer

    register_presets(registry, make_peft_folder)
    with BackgroundServer(
        serve_config(max_queue=4, max_inputs=4, max_batch_size=2, max_wait_ms=0.0), registry
    ) as server:
        engine = server.app.state.engine
        gate, entered = hold_worker(engine)
        first: dict = {}
        t = threading.Thread(
            target=lambda: first.update(
                r=httpx.post(f"{server.url}/v1/classify", json={"domain": "medical", "inputs": TEXTS[:2]}, timeout=60)
            )
        )
        t.start()
        queued = threading.Thread(
            target=lambda: first.update(
                q=httpx.post(f"{server.url}/v1/classify", json={"domain": "medical", "inputs": TEXTS[:4]}, timeout=60)
            )
        )
        assert entered.wait(30)  # the first request's batch is inside the (held) model
        queued.start()
        wait_for(lambda: engine.batcher.depth == 4)
        r = httpx.post(f"{server.url}/models/sentiment", json={"inputs": "one more"}, timeout=10)
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1" and "Queue full" in r.json()["error"]
        assert httpx.get(f"{server.url}/metrics").text.count("loradock_queue_depth 4.0") == 1
        gate.set()
        t.join(60), queued.join(60)
        assert first["r"].status_code == 200 and first["q"].status_code == 200
        after = httpx.post(f"{server.url}/models/sentiment", json={"inputs": "one more"}, timeout=30)
        assert after.status_code == 200
        assert 'loradock_errors_total{domain="sentiment",status="503"} 1.0' in httpx.get(f"{server.url}/metrics").text


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)

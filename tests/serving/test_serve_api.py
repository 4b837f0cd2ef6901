"""The HTTP API against a running server: HF client compatibility, versions, auth, bad input."""

from __future__ import annotations

import httpx
import pytest

from loradock.registry import PRESETS, Registry
from tests.serve_support import TEXTS, offline, register_presets, serve_config

pytestmark = pytest.mark.slow

KEY = "s3cret-token"


@pytest.fixture(scope="module")
def server(tmp_path_factory, make_peft_folder):
    from loradock.serving.server import BackgroundServer

    with pytest.MonkeyPatch.context() as mp:
        offline(mp)  # module fixtures run before the autouse per-test isolation
        registry = Registry(tmp_path_factory.mktemp("serve-api-home"))
        versions = register_presets(registry, make_peft_folder)
        mp.setenv("LORADOCK_TEST_KEY", KEY)
        config = serve_config(api_key_env="LORADOCK_TEST_KEY", max_inputs=8, max_chars=500)
        with BackgroundServer(config, registry) as running:
            running.versions = versions
            running.registry = registry
            yield running
    registry.close()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30) as c:
        yield c


def test_huggingface_inference_client_works_unchanged(server, monkeypatch) -> None:
    import huggingface_hub.constants
    from huggingface_hub import InferenceClient

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # 127.0.0.1 is no Hub call
    client = InferenceClient(model=f"{server.url}/models/medical", token=KEY)
    out = client.text_classification(TEXTS[0])
    assert sorted(o.label for o in out) == sorted(PRESETS["medical"].labels)
    assert abs(sum(o.score for o in out) - 1) < 1e-5
    assert [o.score for o in out] == sorted((o.score for o in out), reverse=True)
    top = InferenceClient(model=f"{server.url}/models/sentiment", token=KEY).text_classification(TEXTS[2], top_k=1)
    assert len(top) == 1 and top[0].label in ("negative", "positive")


def test_classify_names_the_exact_version(server, client) -> None:
    r = client.post("/v1/classify", json={"domain": "education", "inputs": TEXTS[:3], "top_k": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["version"] == "education@1" and body["sha256"] == server.versions["education"].sha256
    assert len(body["results"]) == 3 and all(len(row) == 2 for row in body["results"])
    assert all(item["label"] in PRESETS["education"].labels for row in body["results"] for item in row)
    hf = client.post("/models/sentiment", json={"inputs": TEXTS[2]})
    assert hf.headers["x-adapter-version"] == "sentiment@1" and len(hf.json()[0]) == 2


def test_explicit_version_and_unknown_version(client) -> None:
    ok = client.post("/v1/classify", json={"domain": "medical", "inputs": "x", "version": "1"})
    assert ok.status_code == 200 and ok.json()["version"] == "medical@1"
    missing = client.post("/v1/classify", json={"domain": "medical", "inputs": "x", "version": "9"})
    assert missing.status_code == 404 and "medical@9" in missing.json()["error"]


def test_auth_required_except_health(server) -> None:
    payload = {"domain": "medical", "inputs": ["x"]}
    assert httpx.post(f"{server.url}/v1/classify", json=payload).status_code == 401
    wrong = httpx.post(f"{server.url}/v1/classify", json=payload, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "Bearer" in wrong.json()["error"]
    assert httpx.post(f"{server.url}/models/medical", json={"inputs": "x"}).status_code == 401
    assert httpx.get(f"{server.url}/v1/domains").status_code == 401
    assert httpx.get(f"{server.url}/metrics").status_code == 401  # open only with --public-metrics
    health = httpx.get(f"{server.url}/health")
    assert health.status_code == 200 and "domains" not in health.json()


def test_unknown_domain_is_404_listing_served(client) -> None:
    r = client.post("/v1/classify", json={"domain": "legal", "inputs": ["x"]})
    assert r.status_code == 404
    assert r.json()["served"] == ["education", "medical", "sentiment"] and "'legal'" in r.json()["error"]
    assert client.post("/models/legal", json={"inputs": "x"}).status_code == 404


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"domain": "medical", "inputs": [1, 2]}, "inputs"),
        ({"domain": "medical"}, "inputs"),
        ({"inputs": ["x"]}, "domain"),
        ({"domain": "medical", "inputs": ["x"], "top_k": 0}, "top_k"),
        ({"domain": "medical", "inputs": ["x"], "colour": "red"}, "colour"),
        ({"domain": "medical", "inputs": []}, "inputs"),
    ],
)
def test_wrong_types_are_422_naming_the_field(client, payload, field) -> None:
    r = client.post("/v1/classify", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and field in r.json()["error"]


def test_malformed_json_is_422(client) -> None:
    r = client.post(
        "/v1/classify", content=b'{"domain": "medical", "inputs": [', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]
    hf = client.post("/models/medical", content=b"not json", headers={"content-type": "application/json"})
    assert hf.status_code == 422


def test_limits_are_413(client) -> None:
    many = client.post("/v1/classify", json={"domain": "medical", "inputs": ["x"] * 9})
    assert many.status_code == 413 and "9 inputs" in many.json()["error"] and "limit is 8" in many.json()["error"]
    long = client.post("/models/medical", json={"inputs": "y" * 501})
    assert long.status_code == 413 and "501 characters" in long.json()["error"]


def test_domains_and_metrics_report_what_is_served(server, client) -> None:
    client.post("/v1/classify", json={"domain": "sentiment", "inputs": ["fine"]})
    listing = client.get("/v1/domains").json()
    rows = {row["domain"]: row for row in listing["domains"]}
    assert rows["medical"]["follows"] == "medical@production" and rows["medical"]["tier"] == "device"
    assert rows["sentiment"]["sha256"] == server.versions["sentiment"].sha256 and rows["sentiment"]["requests"] >= 1
    text = client.get("/metrics").text
    for needle in (
        'loradock_requests_total{domain="sentiment",status="200"}',
        "loradock_batch_size_bucket",
        "loradock_queue_depth",
        "loradock_adapter_cache_hits_total",
        "loradock_adapter_cache_loads_total 3.0",
        'loradock_request_seconds_count{domain="medical"}',
        'loradock_errors_total{domain="medical",status="413"}',
    ):
        assert needle in text, needle


def test_server_survives_garbage(server, client) -> None:
    for body in (
        b"\xff\xfe",
        b"[]",
        b"null",
        b'{"domain": null, "inputs": "x"}',
        b'{"domain": "medical", "inputs": "\\u0000"}',
    ):
        r = client.post("/v1/classify", content=body, headers={"content-type": "application/json"})
        assert r.status_code in (200, 422), (body, r.status_code)
    assert client.post("/v1/classify", json={"domain": "medical", "inputs": [""]}).status_code == 200
    assert client.get("/health").json()["status"] == "ok"


def _headers_only(server, extra: str) -> str:
    """Send the headers of a 200 MB POST and no body; what comes back must not wait for the body."""
    import socket

    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /v1/classify HTTP/1.1\r\nHost: {server.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {200 * 1024 * 1024}\r\n{extra}\r\n"
            ).encode()
        )
        return sock.recv(4096).decode("latin-1")


def test_big_bodies_are_answered_before_they_are_sent(server, client) -> None:
    assert _headers_only(server, "").startswith("HTTP/1.1 401")
    too_large = _headers_only(server, f"Authorization: Bearer {KEY}\r\n")
    assert too_large.startswith("HTTP/1.1 413") and '"error"' in too_large
    assert client.post("/v1/classify", json={"domain": "medical", "inputs": ["x"]}).status_code == 200

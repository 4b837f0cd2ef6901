"""Issue 10 over HTTP: token and size checked before the body is read, closed endpoints, no 500s
from hostile input, no alias names leaked, unverified bases refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.api_support import KEY, KEY_ENV, TEXTS, api_config, assert_envelope, tiny_api

NO_TOKEN = {"Authorization": ""}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with tiny_api(tmp_path_factory) as client:
        yield client


def _raw_call(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[list[dict], int]:
    """One POST /v1/classify straight into the ASGI app; counts how often the body was asked for."""
    sent: list[dict] = []
    reads = 0

    async def receive() -> dict:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/classify",
        "raw_path": b"/v1/classify",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("t", 1),
        "server": ("t", 80),
    }
    asyncio.run(app(scope, receive, send))
    return sent, reads


def test_no_token_is_refused_before_a_byte_of_the_body_is_read(api) -> None:
    sent, reads = _raw_call(api.app_, [(b"content-length", str(200 * 1024 * 1024).encode())])
    assert sent[0]["status"] == 401 and reads == 0
    assert dict(sent[0]["headers"])[b"www-authenticate"] == b"Bearer"


def test_a_declared_oversize_body_is_413_before_reading(api) -> None:
    auth = (b"authorization", f"Bearer {KEY}".encode())
    sent, reads = _raw_call(api.app_, [auth, (b"content-length", str(64 * 1024 + 1).encode())])
    assert sent[0]["status"] == 413 and reads == 0
    assert b"65536 bytes" in sent[1]["body"]


def test_a_streamed_body_is_cut_off_at_the_limit(api) -> None:
    chunks = 0

    def body():  # no Content-Length: sent chunked
        nonlocal chunks
        for _ in range(1000):
            chunks += 1
            yield b" " * 1024

    r = api.post("/v1/classify", content=body(), headers={"content-type": "application/json"})
    assert_envelope(r, 413)
    assert "--max-body-bytes" in r.json()["error"]
    assert api.get("/health").json()["status"] == "ok"


def test_every_route_but_health_needs_the_token(api) -> None:
    routes = [
        ("POST", "/v1/classify"),
        ("POST", "/models/tickets"),
        ("GET", "/v1/domains"),
        ("GET", "/v1/models"),
        ("POST", "/v1/admin/reload"),
        ("GET", "/metrics"),
        ("GET", "/docs"),
        ("GET", "/redoc"),
        ("GET", "/openapi.json"),
        ("GET", "/no/such/route"),
    ]
    documented = {(m.upper(), p) for p, ops in api.get("/openapi.json").json()["paths"].items() for m in ops}
    assert documented - {("POST", "/models/{domain}"), ("GET", "/health")} <= set(routes)
    for method, path in routes:
        body = assert_envelope(api.request(method, path, headers=NO_TOKEN, json={}), 401)
        assert "Bearer" in body["error"], path
    health = api.get("/health", headers=NO_TOKEN)
    assert health.status_code == 200 and "domains" not in health.json()
    assert "tickets" not in health.text
    assert api.get("/health").json()["domains"] == ["reviews", "tickets"]  # a token holder sees them


def test_public_metrics_and_docs_are_opened_on_purpose(api, monkeypatch) -> None:
    from fastapi.testclient import TestClient

    from loradock.serving.app import create_app

    monkeypatch.setenv(KEY_ENV, KEY)
    config = api_config(api.base, public_metrics=True, public_docs=True)
    app = create_app(config, api.registry, engine=api.engine)  # same engine; no lifespan, so it is not closed
    try:
        open_ = TestClient(app, raise_server_exceptions=False)
        assert "loradock_requests_total" in open_.get("/metrics").text
        assert open_.get("/openapi.json").status_code == 200 and open_.get("/docs").status_code == 200
        assert_envelope(open_.post("/v1/classify", json={"domain": "tickets", "inputs": "x"}), 401)
    finally:
        app.state.watcher.stop()


@pytest.mark.parametrize(
    "payload",
    [
        {"domain": "tickets", "inputs": ["x"], "version": "nosuch"},
        {"model": "tickets@nosuch", "input": ["x"]},
    ],
)
def test_errors_never_list_alias_names(api, payload) -> None:
    body = assert_envelope(api.post("/v1/classify", json=payload), 404)
    assert "nosuch" in body["error"]
    for alias in ("production", "staging", "latest"):
        assert alias not in body["error"], body


HOSTILE = {
    "huge version": (b'{"domain": "tickets", "inputs": ["x"], "version": "99999999999999999999999"}', 422),
    "huge version in model": (b'{"model": "tickets@99999999999999999999999", "input": "x"}', 422),
    "lone surrogate": (b'{"domain": "tickets", "inputs": ["\\ud800"]}', 422),
    "low surrogate in a string input": (b'{"domain": "tickets", "inputs": "ok \\udfff"}', 422),
    "surrogate domain": (b'{"domain": "\\ud800", "inputs": "x"}', 404),
    "huge top_k": (b'{"domain": "tickets", "inputs": "x", "top_k": 99999999999999999999999}', 200),
    "infinite top_k": (b'{"domain": "tickets", "inputs": "x", "top_k": 1e999}', 422),
    "deep list": (b"[" * 50_000, 422),
    "deep object": (b'{"a":' * 10_000, 422),
    "deep inputs": (b'{"domain": "tickets", "inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", 422),
    "5000-digit number": (b'{"domain": "tickets", "inputs": "x", "top_k": ' + b"1" * 5000 + b"}", 422),
    "not json": (b"not json at all", 422),
    "not utf-8": (b"\xff\xfe\x00", 422),
}


@pytest.mark.parametrize("content, status", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_bodies_answer_4xx_in_the_envelope(api, content, status) -> None:
    r = api.post("/v1/classify", content=content, headers={"content-type": "application/json"})
    if status == 200:
        assert r.status_code == 200, r.text
    else:
        assert_envelope(r, status)
    assert api.post("/v1/classify", json={"domain": "tickets", "inputs": TEXTS[0]}).status_code == 200


def test_unverified_base_is_refused_unless_allowed(api, tmp_path, monkeypatch) -> None:
    from loradock.registry import VersionInfo
    from loradock.serving.engine import ServingEngine
    from loradock.serving.errors import UnverifiedBaseError
    from tests.api_support import DOMAINS
    from tests.onnx_multi_support import peft_folder

    folder = peft_folder(api.base, tmp_path / "unverified", DOMAINS["reviews"], 4, seed=21)
    version = api.registry.register("reviews", folder, VersionInfo(base_model=api.base, base_fingerprint=None))
    assert not version.base_fingerprint
    refused = assert_envelope(api.post("/v1/classify", json={"model": version.ref, "input": "x"}), 409)
    assert "--allow-unverified-base" in refused["error"] and version.ref in refused["error"]
    with pytest.raises(UnverifiedBaseError, match="--allow-unverified-base"):
        ServingEngine(api_config(api.base, domains=(version.ref,)), api.registry)
    allowed = ServingEngine(api_config(api.base, domains=(version.ref,), allow_unverified_base=True), api.registry)
    assert allowed.served["reviews"].current.sha256 == version.sha256


def test_a_missing_blob_is_told_by_ref_never_by_server_path(api, tmp_path) -> None:
    """Issue 22 item 7: the registry's filesystem layout never reaches a client."""
    from loradock.registry import VersionInfo
    from tests.onnx_multi_support import peft_folder

    registry = api.registry
    fingerprint = registry.resolve("tickets@1").base_fingerprint
    folder = peft_folder(api.base, tmp_path / "tickets-3", ("billing", "bug", "account"), 4, seed=33)
    version = registry.register("tickets", folder, VersionInfo(base_model=api.base, base_fingerprint=fingerprint))
    registry.blobs.path(version.files["adapter_model.safetensors"]["sha256"]).unlink()
    body = assert_envelope(
        api.post("/v1/classify", json={"domain": "tickets", "inputs": ["x"], "version": str(version.number)}), 409
    )
    assert f"{version.ref}/adapter_model.safetensors" in body["error"] and "missing" in body["error"]
    assert str(registry.home) not in body["error"] and "blobs" not in body["error"], body


def test_a_non_ascii_key_is_refused_at_start_up(api, monkeypatch) -> None:
    """Headers arrive as latin-1: a UTF-8 key could never match, so it is refused before serving (issue 22, 7)."""
    from loradock.serving.app import create_app
    from loradock.serving.errors import ServeConfigError

    monkeypatch.setenv(KEY_ENV, "clé-secrète")
    with pytest.raises(ServeConfigError, match="position 3") as info:
        create_app(api_config(api.base), api.registry, engine=api.engine)
    assert "ASCII" in str(info.value) and "clé" not in str(info.value)  # the key itself is never echoed


def test_the_console_refuses_a_non_ascii_key_too(monkeypatch) -> None:
    import uvicorn
    from click.testing import CliRunner

    from loradock.cli.main import cli

    def started(self, *args, **kwargs):
        raise AssertionError("the console started with a key no client can send")

    monkeypatch.setattr(uvicorn.Server, "run", started)
    monkeypatch.setenv("CONSOLE_KEY", "pässword")
    result = CliRunner().invoke(cli, ["ui", "--api-key-env", "CONSOLE_KEY"], catch_exceptions=False)
    assert result.exit_code != 0
    assert "position 2" in result.output and "ASCII" in result.output and "pässword" not in result.output

"""Fuzzing the HTTP API in-process: thousands of random JSON and byte bodies, zero 5xx, healthy after."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.api_support import TEXTS, tiny_api

N_JSON = 2000
N_BYTES = 1000
KEYS = ["domain", "inputs", "version", "top_k", "model", "input", "parameters", "function_to_apply", "", "x" * 300]
STRINGS = [
    "tickets",
    "reviews",
    "tickets@1",
    "tickets@2",
    "tickets@production",
    "tickets@staging",
    "tickets@@",
    "tickets@99999999999999999999999",
    "tickets@-1",
    "tickets@0",
    "@",
    "legal",
    "../etc",
    "\ud800",
    "\udfff",
    "a\x00b",
    "\u202e",
    "💥" * 40,
    " ",
    "",
    "softmax",
    "none",
    "sigmoid",
    "1",
    "0",
    "-5",
    "9" * 30,
]
PATHS = [("POST", "/v1/classify")] * 6 + [
    ("POST", "/models/tickets"),
    ("POST", "/models/\u00e9"),
    ("GET", "/v1/models"),
    ("PUT", "/v1/classify"),
    ("POST", "/v1/models"),
]


def _scalar(rng: random.Random) -> Any:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randrange(12)))  # surrogates included
    if kind == 2:
        return rng.choice([0, -1, 1, 2, 64, 10**30, -(10**30), 2**63, 2**64 + 1])
    if kind == 3:
        return rng.choice([0.5, -0.0, 1e308, float("inf"), float("nan")])
    if kind == 4:
        return rng.choice([True, False, None])
    if kind == 5:
        return rng.choice(TEXTS) * rng.choice([1, 20, 200])
    return rng.choice(STRINGS)


def _value(rng: random.Random, depth: int = 0) -> Any:
    if depth > 3 or rng.random() < 0.55:
        return _scalar(rng)
    if rng.random() < 0.5:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(0, 12))]
    return {rng.choice(KEYS): _value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def _json_body(rng: random.Random) -> bytes:
    """Mostly near-valid requests with fields swapped for random values, so every branch is reached."""
    if rng.random() < 0.5:
        body: dict[str, Any] = {"domain": "tickets", "inputs": [rng.choice(TEXTS)]}
        keys = KEYS
    else:
        body = {"model": rng.choice(STRINGS[:7]), "input": rng.choice(TEXTS)}
        keys = ["model", "input", "top_k", "user"]  # this body ignores unknown fields: break known ones
    # Mostly one or two fields broken: valid requests run the model and cost 10-100x an invalid one.
    for _ in range(rng.randrange(1, 3) if rng.random() < 0.85 else 0):
        body[rng.choice(keys)] = _value(rng)
    if rng.random() < 0.1:
        body.pop(rng.choice(list(body)), None)
    out: Any = body if rng.random() < 0.9 else _value(rng)
    return json.dumps(out).encode("utf-8", "surrogatepass")  # lone surrogates stay \\udXXX escapes


def _byte_body(rng: random.Random) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 200)))
    if kind == 1:
        whole = _json_body(rng)
        return whole[: rng.randrange(len(whole) + 1)]  # truncated JSON
    if kind == 2:
        depth = rng.choice([10, 1000, 30_000])
        return b'{"domain": "tickets", "inputs": ' + b"[" * depth + b"]" * rng.choice([0, depth]) + b"}"
    if kind == 3:
        return b'{"domain": "tickets", "inputs": "x", "top_k": ' + b"9" * rng.choice([20, 5000]) + b"}"
    if kind == 4:
        whole = bytearray(_json_body(rng))
        for _ in range(rng.randrange(1, 4)):
            if whole:
                whole[rng.randrange(len(whole))] = rng.randrange(256)
        return bytes(whole)
    return (
        b'{"domain": "tickets", "inputs": ["'
        + rng.choice([b"\\ud800", b"\\udfff\\ud800", b"\\u0000", b"\xed\xa0\x80"])
        + b'"]}'
    )


CONTENT_TYPES = ["application/json"] * 6 + ["text/plain", "application/x-www-form-urlencoded", None]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with tiny_api(tmp_path_factory) as client:
        yield client


def test_random_bodies_never_get_a_5xx_and_the_server_stays_healthy(api) -> None:
    rng = random.Random(20261128)
    statuses: dict[int, int] = {}
    failures = []
    for i in range(N_JSON + N_BYTES):
        content = _json_body(rng) if i < N_JSON else _byte_body(rng)
        method, path = rng.choice(PATHS)
        content_type = rng.choice(CONTENT_TYPES)
        headers = {"content-type": content_type} if content_type else {}
        r = api.request(method, path, content=content, headers=headers)
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        if r.status_code >= 500:
            failures.append((method, path, content[:200], r.status_code, r.text[:200]))
        elif r.status_code >= 400:
            body = r.json()  # every error is the JSON envelope
            assert isinstance(body, dict) and isinstance(body.get("error"), str), (content[:200], r.text[:200])
    assert not failures, failures[:5]
    assert statuses.get(200, 0) > 100 and sum(v for k, v in statuses.items() if k >= 400) > 2000, statuses
    assert api.get("/health").json()["status"] == "ok"
    ok = api.post("/v1/classify", json={"domain": "tickets", "inputs": TEXTS})
    assert ok.status_code == 200 and len(ok.json()["results"]) == len(TEXTS)
    assert api.engine.batcher.alive

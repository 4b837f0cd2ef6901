"""Issue 13's routes: the vLLM/SGLang classify body, OpenAI's model list, typed OpenAPI, one error envelope."""

from __future__ import annotations

import pytest

from tests.api_support import DOMAINS, TEXTS, assert_envelope, tiny_api

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with tiny_api(tmp_path_factory) as client:
        yield client


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ({"domain": "tickets", "inputs": TEXTS}, {"model": "tickets", "input": TEXTS}),
        ({"domain": "tickets", "inputs": TEXTS[0]}, {"model": "tickets", "input": TEXTS[0]}),
        ({"domain": "tickets", "inputs": TEXTS, "version": "2"}, {"model": "tickets@2", "input": TEXTS}),
        (
            {"domain": "tickets", "inputs": TEXTS, "version": "staging", "top_k": 1},
            {"model": "tickets@staging", "input": TEXTS, "top_k": 1},
        ),
        ({"domain": "reviews", "inputs": TEXTS[2:]}, {"model": "reviews@production", "input": TEXTS[2:], "user": "x"}),
    ],
)
def test_vllm_body_and_ours_get_the_same_answer(api, ours, theirs) -> None:
    a, b = api.post("/v1/classify", json=ours), api.post("/v1/classify", json=theirs)
    assert a.status_code == b.status_code == 200, (a.text, b.text)
    assert a.json() == b.json()
    assert a.headers["x-adapter-sha256"] == b.headers["x-adapter-sha256"] == a.json()["sha256"]
    body = a.json()
    texts = ours["inputs"] if isinstance(ours["inputs"], list) else [ours["inputs"]]
    assert len(body["results"]) == len(body["data"]) == len(texts)
    for row, item in zip(body["results"], body["data"]):  # vLLM's `data` agrees with our ranking
        assert item["label"] == row[0]["label"] and item["num_classes"] == len(DOMAINS[ours["domain"]])
        assert abs(sum(item["probs"]) - 1) < 1e-6


def test_model_refs_pick_the_version(api) -> None:
    v2 = api.registry.resolve("tickets@2")
    r = api.post("/v1/classify", json={"model": "tickets@2", "input": "x"})
    assert r.json()["version"] == "tickets@2" and r.json()["sha256"] == v2.sha256
    assert api.post("/v1/classify", json={"model": "tickets", "input": "x"}).json()["version"] == "tickets@1"


def test_models_lists_what_is_served_with_lineage(api) -> None:
    listing = api.get("/v1/models").json()
    assert listing["object"] == "list"
    cards = {card["id"]: card for card in listing["data"]}
    assert set(cards) == set(DOMAINS)
    for domain, card in cards.items():
        version = api.registry.resolve(f"{domain}@production")
        assert card["object"] == "model" and card["version"] == card["root"] == version.ref
        assert card["sha256"] == version.sha256 and card["base_model"] == card["parent"] == api.base
        assert card["follows"] == f"{domain}@production" and card["labels"] == list(DOMAINS[domain])
        assert card["base_fingerprint"] == version.base_fingerprint and "parent_version" in card


def test_openapi_has_a_response_schema_for_every_route(api) -> None:
    doc = api.get("/openapi.json").json()
    assert "ErrorResponse" in doc["components"]["schemas"]
    assert {"ClassifyRequest", "ModelClassifyRequest"} <= set(doc["components"]["schemas"])
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            ok = op["responses"]["200"]["content"]
            schema = next(iter(ok.values()))["schema"]
            assert schema and schema != {}, (method, path)
            errors = {code: r for code, r in op["responses"].items() if code >= "400"}
            for code, response in errors.items():
                assert response["content"] == {"application/json": {"schema": ERROR_REF}}, (method, path, code)
            wanted = (
                {"401", "404", "409", "413", "422", "503"}
                if method == "post" and path != "/v1/admin/reload"
                else ({"401"} if path != "/health" else set())
            )
            assert set(errors) == wanted, (method, path)


def test_every_error_has_the_same_envelope(api, monkeypatch) -> None:
    from loradock.serving.errors import OverloadedError

    assert_envelope(
        api.post("/v1/classify", json={"domain": "tickets", "inputs": "x"}, headers={"Authorization": "Bearer wrong"}),
        401,
    )
    assert "/no/such/route" in assert_envelope(api.get("/no/such/route"), 404)["error"]
    unknown = assert_envelope(api.post("/v1/classify", json={"domain": "legal", "inputs": "x"}), 404)
    assert unknown["served"] == sorted(DOMAINS)
    assert_envelope(api.post("/models/legal", json={"inputs": "x"}), 404)
    assert_envelope(api.post("/v1/classify", json={"model": "tickets@9", "input": "x"}), 404)
    assert "POST" in assert_envelope(api.get("/v1/classify"), 405)["error"]
    assert_envelope(api.post("/v1/classify", json={"domain": "tickets", "inputs": ["x"] * 9}), 413)
    assert_envelope(api.post("/v1/classify", json={"domain": "tickets", "inputs": "y" * 501}), 413)
    assert_envelope(api.post("/v1/classify", content=b"{" * 70_000), 413)
    invalid = assert_envelope(api.post("/v1/classify", json={"domain": "tickets", "inputs": [1]}), 422)
    assert invalid["field"].startswith("inputs") and invalid["detail"]
    assert assert_envelope(api.post("/v1/classify", json={"model": "tickets"}), 422)["field"] == "input"
    assert assert_envelope(api.post("/v1/classify", json={"model": "a@b@c", "input": "x"}), 422)["field"] == "model"

    def full(jobs):  # what the batcher raises when its queue is full
        raise OverloadedError("Server busy: 64 rows queued; retry shortly.", retry_after=2)

    monkeypatch.setattr(api.engine.batcher, "submit", full)
    busy = api.post("/v1/classify", json={"domain": "tickets", "inputs": "x"})
    assert_envelope(busy, 503)
    assert busy.headers["retry-after"] == "2"


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"domain": "tickets", "inputs": [1, 2]}, "inputs"),
        ({"domain": "tickets"}, "inputs"),
        ({"inputs": ["x"]}, "domain"),
        ({"domain": "tickets", "inputs": ["x"], "top_k": 0}, "top_k"),
        ({"domain": "tickets", "inputs": ["x"], "colour": "red"}, "colour"),
        ({"model": "tickets", "input": ["x"], "top_k": -1}, "top_k"),
    ],
)
def test_invalid_fields_are_named_for_either_body(api, payload, field) -> None:
    body = assert_envelope(api.post("/v1/classify", json=payload), 422)
    assert body["field"].startswith(field) and field in body["error"]

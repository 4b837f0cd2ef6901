"""The HTTP API: FastAPI routes over the serving engine (OpenAPI at /docs).

Every error, FastAPI's own 404/405/422 included, answers one envelope:
`{"error": "...", "field"?: ..., "detail"?: [...], "served"?: [...]}`.
The token and the body size are checked by `RequestGuard` before any body byte is read.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loradock.adapters.predict import softmax
from loradock.registry import Registry, parse_ref
from loradock.registry.errors import RegistryError

from .config import ServeConfig
from .errors import OverloadedError, RequestTooLargeError
from .guard import RequestGuard, bearer_ok, read_api_key
from .schemas import (
    OURS_TAG,
    PREDICT_ERRORS,
    VLLM_TAG,
    AnyClassifyRequest,
    ClassifyRequest,
    ClassifyResponse,
    DomainsResponse,
    HealthResponse,
    HFRequest,
    Inputs,
    LabelScore,
    ModelClassifyRequest,
    ModelList,
    ReloadResponse,
    error_docs,
)
from .statuses import LORADOCK_ERRORS, status_for
from .watcher import RegistryWatcher

if TYPE_CHECKING:
    from .engine import ServingEngine, VersionedLogits

log = logging.getLogger(__name__)

# -- helpers ------------------------------------------------------------------------


def _scores(logits: Any, function: str | None) -> list[float]:
    values = [float(x) for x in logits]
    if function == "none":
        return values
    if function == "sigmoid" or (function is None and len(values) == 1):
        return [1 / (1 + math.exp(-v)) for v in values]
    return [float(p) for p in softmax(np.asarray(values, dtype=np.float64))]


def _ranked(p: VersionedLogits, top_k: int | None, function: str | None = None) -> list[dict[str, Any]]:
    pairs = sorted(zip(p.version.labels, _scores(p.logits, function)), key=lambda x: -x[1])
    return [{"label": label, "score": score} for label, score in pairs[: top_k or len(pairs)]]


def _class_data(i: int, p: VersionedLogits) -> dict[str, Any]:
    probs = _scores(p.logits, None)
    best = max(range(len(probs)), key=probs.__getitem__)
    return {"index": i, "label": p.version.labels[best], "probs": probs, "num_classes": len(probs)}


_FASTAPI_PARSE_ERROR = "There was an error parsing the body"
_SKIPPED = {"body", OURS_TAG, VLLM_TAG, "str", "int", "float", "bool"}


def _field_name(loc: Any) -> str:
    """`('body', 'loradock-body', 'inputs', 'list[str]', 0)` -> `inputs[0]`: union tags dropped."""
    name = ""
    for part in loc:
        if isinstance(part, str) and (part in _SKIPPED or "[" in part):
            continue
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


class ErrorJSONResponse(JSONResponse):
    """ASCII-escaped JSON: an error may quote client text holding a lone surrogate, which UTF-8 cannot encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The one error envelope; `retry_after=N` becomes the Retry-After header."""
    headers = dict(headers or {})
    if "retry_after" in extra:
        headers["Retry-After"] = str(extra.pop("retry_after"))
    body = {"error": message, **{k: v for k, v in extra.items() if v is not None}}
    return ErrorJSONResponse(body, status_code=status, headers=headers or None)


def _refusal(exc: Exception, domain: str, version: str | None, served: list[str]) -> JSONResponse:
    """A loradock error as the envelope, at the status serving/statuses.py gives it.

    A registry refusal concerns the version or alias named in the request; it is told without the
    alias names the registry lists (clients did not ask for them).
    """
    status = status_for(exc)
    if isinstance(exc, RegistryError) and status == 422:
        return error_response(422, f"Invalid request: field 'version': {exc}", field="version")
    if isinstance(exc, RegistryError) and status == 404:
        return error_response(
            404,
            f"No version {domain}@{version}: no such version number or alias of "
            f"{domain!r} (or every candidate failed its quality gate).",
        )
    if isinstance(exc, RegistryError):
        return error_response(status, f"{domain}@{version} cannot be served: {exc}")
    extra: dict[str, Any] = {"retry_after": exc.retry_after} if isinstance(exc, OverloadedError) else {}
    if status == 404:
        extra["served"] = served
    return error_response(status, str(exc), **extra)


def _bad_text(texts: list[str]) -> str | None:
    for i, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"Invalid request: field 'inputs[{i}]': not valid Unicode text (a lone surrogate such as \\ud800); send UTF-8 text."
    return None


def _public_paths(config: ServeConfig) -> tuple[set[str], tuple[str, ...]]:
    """Exact paths and prefixes that need no token: /health always, metrics and docs when opened on purpose."""
    exact = {"/health"}
    if config.public_metrics:
        exact.add("/metrics")
    if config.public_docs:
        exact |= {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
    return exact, ("/ui",)  # the console has its own login (token once, then a session cookie)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            reason = str(first.get("ctx", {}).get("error", "decode error"))
            return error_response(422, f"Invalid request: body is not valid JSON ({reason}).", field="body")
        field = _field_name(first.get("loc", ()))
        return error_response(
            422,
            f"Invalid request: field {field!r}: {first.get('msg', 'invalid')}.",
            field=field,
            detail=[{"field": _field_name(e.get("loc", ())), "msg": e.get("msg")} for e in errors],
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            message = f"No route {request.method} {request.url.path}; the API is described at /openapi.json."
        elif exc.status_code == 405:
            allowed = {k.lower(): v for k, v in (exc.headers or {}).items()}.get("allow", "")
            message = f"{request.method} is not allowed on {request.url.path} (allowed: {allowed or 'none'})."
        elif exc.status_code == 400 and exc.detail == _FASTAPI_PARSE_ERROR:  # not UTF-8, nested too deep, huge ints
            return error_response(
                422,
                "Invalid request: body is not valid JSON (not UTF-8, nested too deeply, or a "
                "number too long to read); send a JSON object.",
                field="body",
            )
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, f"Internal error ({type(exc).__name__}); see the server log.")


# -- dependencies: the state create_app sets on the app, typed ---------------------


async def _engine(request: Request) -> ServingEngine:
    # async: a plain def would cost every request a hop to the thread pool
    engine: ServingEngine = request.app.state.engine
    return engine


async def _config(request: Request) -> ServeConfig:
    config: ServeConfig = request.app.state.config
    return config


async def _watcher(request: Request) -> RegistryWatcher:
    watcher: RegistryWatcher = request.app.state.watcher
    return watcher


async def _api_key(request: Request) -> str | None:
    key: str | None = request.app.state.api_key
    return key


# Strings inside Annotated: the engine module (and torch) loads in create_app, not at import.
EngineDep = Annotated["ServingEngine", Depends(_engine)]
ConfigDep = Annotated[ServeConfig, Depends(_config)]
WatcherDep = Annotated[RegistryWatcher, Depends(_watcher)]
ApiKeyDep = Annotated[str | None, Depends(_api_key)]


# -- serving one request --------------------------------------------------------------


def _check_limits(config: ServeConfig, texts: list[str]) -> None:
    if len(texts) > config.max_inputs:
        raise RequestTooLargeError(
            f"{len(texts)} inputs in one request; the limit is {config.max_inputs}. Split the request."
        )
    for i, text in enumerate(texts):
        if len(text) > config.max_chars:
            raise RequestTooLargeError(
                f"inputs[{i}] has {len(text)} characters; the limit is {config.max_chars}. Shorten it."
            )


async def _predict(
    engine: ServingEngine, config: ServeConfig, domain: str, texts: list[str], version: str | None
) -> list[VersionedLogits] | JSONResponse:
    try:
        bad = _bad_text(texts)
        if bad:
            return error_response(422, bad, field="inputs")
        _check_limits(config, texts)
        if version is None:
            entry = engine.route(domain)
        else:
            entry = await run_in_threadpool(engine.route_version, domain, version)
        try:
            return await engine.predict(entry, texts)
        finally:
            engine.cache.release(entry)
    except LORADOCK_ERRORS as exc:
        return _refusal(exc, domain, version, engine.served_names())
    except Exception as exc:  # the server answers 500 and keeps serving
        log.exception("request for %s failed", domain)
        return error_response(500, f"Internal error ({type(exc).__name__}); see the server log.")


async def _serve(
    engine: ServingEngine, config: ServeConfig, domain: str, inputs: Inputs, version: str | None
) -> list[VersionedLogits] | JSONResponse:
    """Predictions, or the error envelope; every request with a text is counted in the metrics."""
    texts = [inputs] if isinstance(inputs, str) else list(inputs)
    if not texts:
        return error_response(422, "Invalid request: field 'inputs': give at least one text.", field="inputs")
    started = time.perf_counter()
    status = 200
    try:
        out = await _predict(engine, config, domain, texts, version)
        status = out.status_code if isinstance(out, JSONResponse) else 200
        return out
    finally:
        label = domain if domain in engine.served else "_unknown"
        engine.metrics.observe_request(label, status, time.perf_counter() - started)
        if status >= 400:
            engine.count_error(domain)


def _version_headers(response: Response, predictions: list[VersionedLogits]) -> None:
    v = predictions[0].version
    response.headers["X-Adapter-Version"] = v.ref
    response.headers["X-Adapter-Sha256"] = v.sha256


def _target(body: ClassifyRequest | ModelClassifyRequest) -> tuple[str, Inputs, str | None] | JSONResponse:
    """(domain, inputs, version) from either body; a `model` that does not parse is a 422."""
    if isinstance(body, ClassifyRequest):
        return body.domain, body.inputs, body.version
    try:
        ref = parse_ref(body.model)
    except (RegistryError, ValueError) as exc:
        return error_response(422, f"Invalid request: field 'model': {exc}", field="model")
    return ref.domain, body.input, None if "@" not in body.model else str(ref.number or ref.alias)


def _model_card(engine: ServingEngine, name: str) -> dict[str, Any]:
    s = engine.served[name]
    v = s.current.version
    return {
        "id": name,
        "created": int(s.swapped_at),
        "root": v.ref,
        "parent": engine.model.base_model,
        "version": v.ref,
        "sha256": v.sha256,
        "base_model": engine.model.base_model,
        "base_fingerprint": v.base_fingerprint,
        "parent_version": v.parent,
        "follows": s.spec,
        "labels": list(v.labels),
    }


# -- the routes -----------------------------------------------------------------------

router = APIRouter()


@router.post("/v1/classify", response_model=ClassifyResponse, responses=PREDICT_ERRORS)
async def classify(
    body: Annotated[AnyClassifyRequest, Body()], response: Response, engine: EngineDep, config: ConfigDep
) -> Any:
    """Labels and scores per input, and the exact version (and content hash) that served them.

    Takes loradock's body `{"domain", "inputs", "version"?}` or vLLM/SGLang's `{"model", "input"}`
    (`model`: DOMAIN, DOMAIN@N or DOMAIN@ALIAS); both get the same answer.
    """
    target = _target(body)
    if isinstance(target, JSONResponse):
        return target
    domain, inputs, version = target
    out = await _serve(engine, config, domain, inputs, version)
    if isinstance(out, JSONResponse):
        return out
    _version_headers(response, out)
    v = out[0].version
    return {
        "domain": domain,
        "version": v.ref,
        "sha256": v.sha256,
        "model": domain,
        "results": [_ranked(p, body.top_k) for p in out],
        "data": [_class_data(i, p) for i, p in enumerate(out)],
    }


@router.post("/models/{domain}", response_model=list[list[LabelScore]], responses=PREDICT_ERRORS)
async def hf_inference(domain: str, body: HFRequest, response: Response, engine: EngineDep, config: ConfigDep) -> Any:
    """Hugging Face inference convention: {"inputs": "..."} in, [[{"label", "score"}]] out."""
    out = await _serve(engine, config, domain, body.inputs, None)
    if isinstance(out, JSONResponse):
        return out
    top_k = body.parameters.top_k if body.parameters else None
    function = body.parameters.function_to_apply if body.parameters else None
    _version_headers(response, out)
    return [_ranked(p, top_k, function) for p in out]


@router.get("/v1/models", response_model=ModelList, responses=error_docs(401))
async def models(engine: EngineDep) -> Any:
    """OpenAI's model list: one entry per served domain, with version, content hash, base and lineage."""
    return {"data": [_model_card(engine, name) for name in engine.served_names()]}


@router.get("/v1/domains", response_model=DomainsResponse, responses=error_docs(401))
async def domains(engine: EngineDep) -> Any:
    """What is served: version, alias followed, content hash, cache tier, request counts."""
    return {
        "base_model": engine.model.base_model,
        "base_fingerprint": engine.model.fingerprint,
        "device": str(engine.model.device),
        "domains": engine.describe(),
    }


@router.post(
    "/v1/admin/reload", response_model=ReloadResponse, response_model_exclude_none=True, responses=error_docs(401)
)
async def reload(watcher: WatcherDep) -> Any:
    """Re-resolve every served alias now and hot-swap what moved."""
    return {"swaps": await run_in_threadpool(watcher.reload)}


@router.get("/health", response_model=HealthResponse, response_model_exclude_none=True)
async def health(request: Request, engine: EngineDep, key: ApiKeyDep) -> Any:
    """Liveness; never needs the token. Under --api-key-env the domains are told to token holders only."""
    body: dict[str, Any] = {"queue_depth": engine.batcher.depth}
    if key is None or bearer_ok(request.headers.get("authorization"), key):
        body["domains"] = engine.served_names()
    return body


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_docs(401, plain_route=True),
    },
)
async def prometheus(engine: EngineDep) -> Response:
    """Prometheus metrics; needs the token under --api-key-env unless --public-metrics."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)


# -- the app ------------------------------------------------------------------------


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.watcher.stop()
    app.state.engine.close()


def create_app(config: ServeConfig, registry: Registry | None = None, engine: ServingEngine | None = None) -> FastAPI:
    """A FastAPI app serving `config.domains`; the model loads now, the worker threads start now."""
    from .console import mount_console  # the web console at /ui, with the live page; its own login for --api-key-env
    from .engine import ServingEngine

    key = read_api_key(config.api_key_env)
    engine = engine or ServingEngine(config, registry)
    watcher = RegistryWatcher(engine, config.poll_interval)
    engine.start()
    watcher.start()
    app = FastAPI(
        title="loradock",
        version="1",
        lifespan=_lifespan,
        description="One base model, many domain LoRA adapters, mixed batches, hot swap.",
    )
    app.state.engine, app.state.watcher, app.state.config, app.state.api_key = engine, watcher, config, key
    exact, prefixes = _public_paths(config)
    app.add_middleware(
        RequestGuard,
        key=key,
        public=exact,
        public_prefixes=prefixes,
        max_body_bytes=config.max_body_bytes,
        error=error_response,
    )
    _install_error_handlers(app)
    engine.metrics.watch_served(
        lambda: [(s.domain, s.current.version.ref, s.current.sha256) for s in list(engine.served.values())]
    )
    app.include_router(router)
    mount_console(app, engine.registry, engine, config.api_key_env)
    return app

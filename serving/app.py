"""The HTTP API: FastAPI routes over the serving engine (OpenAPI at /docs)."""

from __future__ import annotations

import hmac
import logging
import math
import os
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, AsyncIterator, Literal, Union

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from loradock.registry import Registry
from loradock.registry.errors import RegistryError

from .config import ServeConfig
from .errors import OverloadedError, RequestTooLargeError, ServeConfigError, ServingError
from .watcher import RegistryWatcher

if TYPE_CHECKING:
    from .engine import Prediction, ServingEngine

log = logging.getLogger(__name__)

Inputs = Union[str, list[str]]


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: str = Field(description="A served domain, e.g. medical.")
    inputs: Inputs = Field(description="One text or a list of texts.")
    top_k: int | None = Field(None, ge=1, description="Labels per input (default: all, best first).")
    version: str | None = Field(None, description="A version number or alias of the domain; default: the served one.")


class HFParameters(BaseModel):
    top_k: int | None = Field(None, ge=1)
    function_to_apply: Literal["softmax", "sigmoid", "none"] | None = None


class HFRequest(BaseModel):
    inputs: Inputs
    parameters: HFParameters | None = None


def _scores(logits: Any, function: str | None) -> list[float]:
    values = [float(x) for x in logits]
    if function == "none":
        return values
    if function == "sigmoid" or (function is None and len(values) == 1):
        return [1 / (1 + math.exp(-v)) for v in values]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def _ranked(p: Prediction, top_k: int | None, function: str | None = None) -> list[dict[str, Any]]:
    pairs = sorted(zip(p.version.labels, _scores(p.logits, function)), key=lambda x: -x[1])
    return [{"label": label, "score": score} for label, score in pairs[: top_k or len(pairs)]]


def _field_name(loc: Any) -> str:
    """`('body', 'inputs', 'list[str]', 0)` -> `inputs[0]`: union branch tags dropped."""
    name = ""
    for part in loc:
        if part == "body" or (isinstance(part, str) and (part in ("str", "int", "float", "bool") or "[" in part)):
            continue
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else part)
    return name or "body"


def _error(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else None
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _auth_dependency(config: ServeConfig):  # type: ignore[no-untyped-def]
    if not config.api_key_env:
        return lambda: None
    key = os.environ.get(config.api_key_env, "")
    if not key:
        raise ServeConfigError(f"--api-key-env {config.api_key_env} names an unset or empty environment variable; "
                               f"export {config.api_key_env}=... first.")

    def check(request: Request) -> None:
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise _Unauthorized()

    return check


class _Unauthorized(Exception):
    pass


def create_app(config: ServeConfig, registry: Registry | None = None, engine: ServingEngine | None = None) -> FastAPI:
    """A FastAPI app serving `config.domains`; the model loads now, the worker threads start now."""
    from .engine import ServingEngine

    auth = _auth_dependency(config)
    engine = engine or ServingEngine(config, registry)
    watcher = RegistryWatcher(engine, config.poll_interval)
    engine.start()
    watcher.start()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        watcher.stop()
        engine.close()

    app = FastAPI(title="loradock", version="1", lifespan=lifespan,
                  description="One base model, many domain LoRA adapters, mixed batches, hot swap.")
    app.state.engine = engine
    app.state.watcher = watcher
    app.state.config = config
    metrics = engine.metrics

    @app.exception_handler(_Unauthorized)
    async def unauthorized(request: Request, exc: _Unauthorized) -> JSONResponse:
        return JSONResponse({"error": "Missing or wrong bearer token; send 'Authorization: Bearer <key>'."},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        if first.get("type") == "json_invalid":
            return _error(422, f"Invalid request: body is not valid JSON ({first.get('ctx', {}).get('error', 'decode error')}).",
                          field="body")
        field = _field_name(first.get("loc", ()))
        return _error(422, f"Invalid request: field {field!r}: {first.get('msg', 'invalid')}.",
                      field=field, detail=[{"field": _field_name(e.get("loc", ())), "msg": e.get("msg")} for e in errors])

    def check_limits(texts: list[str]) -> None:
        if len(texts) > config.max_inputs:
            raise RequestTooLargeError(f"{len(texts)} inputs in one request; the limit is {config.max_inputs}. "
                                       "Split the request.")
        for i, text in enumerate(texts):
            if len(text) > config.max_chars:
                raise RequestTooLargeError(f"inputs[{i}] has {len(text)} characters; the limit is "
                                           f"{config.max_chars}. Shorten it.")

    async def serve(domain: str, inputs: Inputs, version: str | None) -> tuple[list[Prediction], list[str]] | JSONResponse:
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        if not texts:
            return _error(422, "Invalid request: field 'inputs': give at least one text.", field="inputs")
        started = time.perf_counter()
        status = 200
        try:
            check_limits(texts)
            if version is None:
                entry = engine.route(domain)
            else:
                entry = await run_in_threadpool(engine.route_version, domain, version)
            try:
                predictions = await engine.predict(entry, texts)
            finally:
                engine.cache.release(entry)
            return predictions, texts
        except ServingError as exc:
            status = exc.status
            extra: dict[str, Any] = {"retry_after": exc.retry_after} if isinstance(exc, OverloadedError) else {}
            if status == 404:
                extra["served"] = engine.served_names()
            return _error(status, str(exc), **extra)
        except RegistryError as exc:  # unknown version or alias named in the request
            status = 404
            return _error(404, str(exc))
        except Exception as exc:  # the server answers 500 and keeps serving
            status = 500
            log.exception("request for %s failed", domain)
            return _error(500, f"Internal error ({type(exc).__name__}); see the server log.")
        finally:
            label = domain if domain in engine.served else "_unknown"
            metrics.observe_request(label, status, time.perf_counter() - started)
            if status >= 400:
                engine.count_error(domain)

    @app.post("/v1/classify", dependencies=[Depends(auth)])
    async def classify(body: ClassifyRequest) -> Any:
        """Labels and scores per input, and the exact version (and content hash) that served them."""
        out = await serve(body.domain, body.inputs, body.version)
        if isinstance(out, JSONResponse):
            return out
        predictions, _ = out
        v = predictions[0].version
        return JSONResponse({"domain": body.domain, "version": v.ref, "sha256": v.sha256,
                             "results": [_ranked(p, body.top_k) for p in predictions]},
                            headers={"X-Adapter-Version": v.ref, "X-Adapter-Sha256": v.sha256})

    @app.post("/models/{domain}", dependencies=[Depends(auth)])
    async def hf_inference(domain: str, body: HFRequest) -> Any:
        """Hugging Face inference convention: {"inputs": "..."} in, [[{"label", "score"}]] out."""
        out = await serve(domain, body.inputs, None)
        if isinstance(out, JSONResponse):
            return out
        predictions, _ = out
        top_k = body.parameters.top_k if body.parameters else None
        function = body.parameters.function_to_apply if body.parameters else None
        v = predictions[0].version
        return JSONResponse([_ranked(p, top_k, function) for p in predictions],
                            headers={"X-Adapter-Version": v.ref, "X-Adapter-Sha256": v.sha256})

    @app.get("/v1/domains", dependencies=[Depends(auth)])
    async def domains() -> Any:
        """What is served: version, alias followed, content hash, cache tier, request counts."""
        return {"base_model": engine.model.base_model, "base_fingerprint": engine.model.fingerprint,
                "device": engine.model.device, "domains": engine.describe()}

    @app.post("/v1/admin/reload", dependencies=[Depends(auth)])
    async def reload() -> Any:
        """Re-resolve every served alias now and hot-swap what moved."""
        return {"swaps": await run_in_threadpool(watcher.reload)}

    @app.get("/health")
    async def health() -> Any:
        return {"status": "ok", "domains": engine.served_names(), "queue_depth": engine.batcher.depth}

    @app.get("/metrics")
    async def prometheus() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    from .console import mount_console  # the web console at /ui, with the live page; its own login for --api-key-env

    mount_console(app, engine.registry, engine, config.api_key_env)
    return app

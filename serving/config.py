"""ServeConfig: every knob of `adapters serve`, validated once at construction."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loradock.adapters.predict import MAX_CHARS
from loradock.registry import CLASSIFICATION, DEFAULT_BASE, parse_ref
from loradock.registry.errors import RegistryError

from .errors import MixedBasesError, ServeConfigError

log = logging.getLogger(__name__)

# Tasks this server runs; a generation domain is refused by name before any model loads.
SERVED_TASKS = (CLASSIFICATION,)
MAX_THREADS = 1024  # torch refuses more than a C int; no machine this serves on has more cores

if TYPE_CHECKING:
    from loradock.registry import Registry


def parse_domains(spec: str | None) -> tuple[str, ...]:
    """`medical@production,sentiment` -> refs; a bare domain means `DOMAIN@latest`."""
    if not spec:
        return ()
    refs = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        refs.append(str(parse_ref(part)))
    return tuple(refs)


@dataclass(frozen=True)
class ServeConfig:
    """How one server process runs: what it serves, where, and its limits."""

    domains: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    base_model: str = DEFAULT_BASE
    max_batch_size: int = 16
    max_wait_ms: float = 5.0
    max_loaded: int = 32
    max_host: int = 256
    max_queue: int = 512
    max_inputs: int = 64
    max_chars: int = MAX_CHARS  # the same budget `adapters predict` and loradock.load() cut texts to
    max_length: int = 128
    api_key_env: str | None = None
    poll_interval: float = 1.0
    threads: int | None = None  # torch intra-op threads on CPU; None: one core left for HTTP
    workers: int | None = None  # batches run at once; None: one per core on the onnx backend (max 4), else 1
    backend: str = "torch"  # torch | onnx | auto (serving/backends/); the CLI defaults to auto
    max_body_bytes: int = 4 * 1024 * 1024  # 64 inputs x 4000 chars of escaped JSON fit with room to spare
    public_metrics: bool = False  # under --api-key-env, /metrics needs the token unless this is set
    public_docs: bool = False  # likewise /docs, /redoc and /openapi.json
    allow_unverified_base: bool = False  # serve versions with no base fingerprint (contract 2)
    log_level: str = "info"  # the root --log-level when given; a server says what it swaps and loads by default
    log_format: str = "text"  # text | json
    access_log: bool = False  # uvicorn's per-request log costs CPU; off unless asked for

    def __post_init__(self) -> None:
        positive = {
            "max_batch_size": self.max_batch_size,
            "max_loaded": self.max_loaded,
            "max_host": self.max_host,
            "max_queue": self.max_queue,
            "max_inputs": self.max_inputs,
            "max_chars": self.max_chars,
            "max_length": self.max_length,
            "max_body_bytes": self.max_body_bytes,
        }
        for name, value in positive.items():
            if value < 1:
                raise ServeConfigError(f"{name} must be at least 1, got {value}.")
        if self.max_queue < self.max_inputs:
            # A request larger than the whole queue would be answered 503 forever.
            raise ServeConfigError(
                f"max_queue ({self.max_queue}) must be at least max_inputs ({self.max_inputs}); "
                f"raise --max-queue to {self.max_inputs} or more."
            )
        if not 0 <= self.port <= 65535:
            raise ServeConfigError(f"port must be 0-65535 (0: any free port), got {self.port}.")
        if self.max_wait_ms < 0:
            raise ServeConfigError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}.")
        if self.poll_interval <= 0:
            raise ServeConfigError(f"poll_interval must be > 0 seconds, got {self.poll_interval}.")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise ServeConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}.")
        domains = [parse_ref(r).domain for r in self.domains]
        duplicated = sorted({d for d in domains if domains.count(d) > 1})
        if duplicated:
            raise ServeConfigError(f"Domain(s) {', '.join(duplicated)} named twice in --domains; name each once.")
        if len(self.domains) > self.max_loaded:
            raise ServeConfigError(
                f"{len(self.domains)} domains are pinned but --max-loaded is {self.max_loaded}; "
                f"raise --max-loaded to at least {len(self.domains)}."
            )
        if self.backend not in ("auto", "torch", "onnx"):
            raise ServeConfigError(f"backend must be auto, torch or onnx, got {self.backend!r}.")
        if self.log_level.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ServeConfigError(f"log_level must be debug, info, warning or error, got {self.log_level!r}.")
        if self.log_format not in ("text", "json"):
            raise ServeConfigError(f"log_format must be text or json, got {self.log_format!r}.")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise ServeConfigError(f"threads must be 1-{MAX_THREADS}, got {self.threads}; pass --threads within it.")
        if self.workers is not None and not 1 <= self.workers <= 64:
            raise ServeConfigError(f"workers must be 1-64, got {self.workers}.")
        if self.max_host < self.max_loaded:
            object.__setattr__(self, "max_host", self.max_loaded)

    def batch_workers(self, backend: str) -> int:
        """Batches run at once. onnxruntime takes concurrent runs on one session, so on CPU the onnx backend
        runs one single-threaded batch per core (bench/serve.py: both cores busy instead of one); torch
        keeps one batch over its intra-op threads (its per-row LoRA is Python-heavy and holds the GIL)."""
        if self.workers is not None:
            return self.workers
        return min(4, os.cpu_count() or 1) if backend == "onnx" else 1

    def onnx_threads(self, workers: int) -> int:
        """onnxruntime intra-op threads per batch: the cores shared out among the workers."""
        return self.threads or max(1, (os.cpu_count() or 1) // workers)

    @property
    def torch_threads(self) -> int:
        # Measured here (bench/serve.py): with the event loop busy, 2 intra-op threads on 2 cores ran
        # a batch 4x slower than 1 thread; leave one core to HTTP.
        return self.threads or max(1, (os.cpu_count() or 2) - 1)


def default_domains(registry: Registry) -> tuple[str, ...]:
    """Every domain with a version: `DOMAIN@production` where that alias exists, else `DOMAIN@latest`."""
    refs, skipped = [], []
    for domain in registry.domain_names():
        if not registry.versions(domain, limit=1):
            continue
        if registry.domain(domain).task not in SERVED_TASKS:
            skipped.append(domain)
            continue
        refs.append(
            f"{domain}@production"
            if any(a["name"] == "production" for a in registry.aliases(domain))
            else f"{domain}@latest"
        )
    if skipped:
        log.info("not serving %s: generation domains have no server yet", ", ".join(skipped))
    if not refs:
        raise ServeConfigError(
            "Nothing to serve: the registry holds no classification adapters"
            + (f" ({', '.join(skipped)} are generation domains, which have no server yet)" if skipped else "")
            + ". Train one with 'adapters train medical' first."
        )
    return tuple(refs)


def check_served_tasks(registry: Registry, refs: Sequence[str]) -> None:
    """Refuse, before any model loads, a ref whose version is of a task this server cannot run.

    A ref that does not resolve is left to the resolver that follows, which names the next step.
    """
    for ref in refs:
        try:
            version = registry.resolve(ref)
        except RegistryError:
            continue
        if version.task not in SERVED_TASKS:
            raise ServeConfigError(
                f"{version.ref} is a {version.task} version; this server runs {', '.join(SERVED_TASKS)} "
                "adapters only (generation serving is not built yet). Serve the other domains with "
                "--domains, or load it with PEFT on its base: see adapters show " + version.ref
            )


def base_for(registry: Registry, refs: tuple[str, ...], base: str | None = None) -> str:
    """The one base the versions in `refs` were trained on, or `base` when given (`--base`).

    One server runs one base: versions on two bases raise MixedBasesError naming the split.
    """
    if base:
        return base
    groups: dict[str, list[str]] = {}
    for ref in refs:
        version = registry.resolve(ref)
        groups.setdefault(version.base_model or DEFAULT_BASE, []).append(ref)
    if len(groups) > 1:
        raise MixedBasesError(groups)
    return next(iter(groups), DEFAULT_BASE)


def build_config(
    registry: Registry, domains: str | None = None, base: str | None = None, **options: Any
) -> ServeConfig:
    """The ServeConfig `adapters serve` and Ray's `serve run` both start from.

    `domains` is DOMAIN@REF,... (default: every domain with a version); `options` are the other
    ServeConfig fields. They are validated before the registry is read for the versions' base, so a
    bad flag is told first; `base` (`--base`) overrides that base.
    """
    refs = parse_domains(domains) or default_domains(registry)
    config = ServeConfig(**{**options, "domains": refs})
    check_served_tasks(registry, refs)
    return dataclasses.replace(config, base_model=base_for(registry, refs, base))

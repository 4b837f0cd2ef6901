"""`adapters serve`: one base model, many domain adapters, over HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from loradock.serving.config import ServeConfig


@click.command(name="serve")
@click.option(
    "--domains",
    default=None,
    help="Comma-separated DOMAIN@REF to serve, e.g. medical@production,sentiment@latest "
    "(default: every domain with a version, at production if set, else latest).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes it.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda (fp16/bf16 on CUDA).")
@click.option("--max-batch-size", default=16, show_default=True, type=int, help="Rows per model batch.")
@click.option(
    "--max-wait-ms",
    default=5.0,
    show_default=True,
    type=float,
    help="How long the first row of a batch waits for company.",
)
@click.option("--max-loaded", default=32, show_default=True, type=int, help="Adapters resident on the device.")
@click.option(
    "--max-queue",
    default=512,
    show_default=True,
    type=int,
    help="Rows waiting before requests get 503 with Retry-After.",
)
@click.option(
    "--api-key-env",
    default=None,
    metavar="VAR",
    help="Require 'Authorization: Bearer $VAR' on the API (VAR names an environment variable).",
)
@click.option(
    "--poll-interval",
    default=1.0,
    show_default=True,
    type=float,
    help="Seconds between registry polls for alias moves.",
)
@click.option(
    "--threads",
    default=None,
    type=int,
    help="Intra-op threads on CPU (default: torch all cores but one, which serves HTTP; onnx the cores "
    "shared out among --workers).",
)
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(1, 64),
    help="Batches run at once (default: onnx one per core, up to 4; torch 1).",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "torch", "onnx"]),
    default="auto",
    show_default=True,
    help="onnx: one onnxruntime graph per base, int8 where each domain passes its gate (CPU); "
    "auto: onnx on CPU once that graph exists, else torch.",
)
@click.option(
    "--base",
    default=None,
    metavar="MODEL",
    help="Base model to run (default: the one the served versions were trained on).",
)
@click.option(
    "--max-body-bytes",
    default=4 * 1024 * 1024,
    show_default=True,
    type=int,
    help="Refuse request bodies over this size (413), before reading them.",
)
@click.option("--public-metrics", is_flag=True, help="With --api-key-env: leave /metrics open (no token).")
@click.option(
    "--public-docs", is_flag=True, help="With --api-key-env: leave /docs, /redoc and /openapi.json open (no token)."
)
@click.option(
    "--allow-unverified-base", is_flag=True, help="Serve versions that record no base fingerprint (refused by default)."
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line (swaps, loads, evictions, refusals carry domain and sha256).",
)
@click.option(
    "--access-log", is_flag=True, help="Log every request (uvicorn's access log; off by default, it costs CPU)."
)
@click.option(
    "--ray",
    "ray_",
    is_flag=True,
    help="Run as a Ray Serve application: one ingress over --replicas model replicas (pip install 'loradock[ray]').",
)
@click.option("--replicas", default=2, show_default=True, type=int, help="With --ray: model replicas.")
@click.option(
    "--replica-cpus",
    default=None,
    type=float,
    metavar="CPUS",
    help="With --ray: CPUs each replica reserves (default: 1, or the share that fits a Ray started here).",
)
@click.option(
    "--ingress-cpus",
    default=0.5,
    show_default=True,
    type=float,
    metavar="CPUS",
    help="With --ray: CPUs the HTTP ingress reserves.",
)
@click.option(
    "--address",
    default=None,
    metavar="ADDR",
    help="With --ray: the Ray cluster to join ('auto': the one running here); default: a local Ray.",
)
@click.option(
    "--autoscaling",
    default=None,
    metavar="JSON",
    help='With --ray: Ray\'s autoscaling_config, e.g. \'{"min_replicas": 1, "max_replicas": 4}\'.',
)
def serve(
    domains: str | None,
    host: str,
    port: int,
    device: str,
    max_batch_size: int,
    max_wait_ms: float,
    max_loaded: int,
    max_queue: int,
    api_key_env: str | None,
    poll_interval: float,
    threads: int | None,
    workers: int | None = None,
    backend: str = "auto",
    base: str | None = None,
    max_body_bytes: int = 4 * 1024 * 1024,
    public_metrics: bool = False,
    public_docs: bool = False,
    allow_unverified_base: bool = False,
    log_format: str = "text",
    access_log: bool = False,
    ray_: bool = False,
    replicas: int = 2,
    replica_cpus: float | None = None,
    ingress_cpus: float = 0.5,
    address: str | None = None,
    autoscaling: str | None = None,
) -> None:
    """Serve domain adapters over HTTP: mixed-domain batches on one base, hot swap on alias moves.

    Example usage:

        adapters serve --domains medical@production,sentiment@latest --port 8000

        curl -s localhost:8000/v1/classify -H 'content-type: application/json' \\
            -d '{"domain": "medical", "inputs": ["chest pain"]}'

        ADAPTERS_KEY=... adapters serve --api-key-env ADAPTERS_KEY --public-metrics

    With --api-key-env every route but /health needs the token (/health then names no
    domains); --public-metrics and --public-docs open those on purpose.
    The base comes from the served versions; domains on two bases need two servers.
    """
    from loradock.registry import Registry
    from loradock.serving.config import build_config
    from loradock.serving.server import run

    registry = Registry()
    config = build_config(
        registry,
        domains,
        base,
        host=host,
        port=port,
        device=device,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        max_loaded=max_loaded,
        max_queue=max_queue,
        api_key_env=api_key_env,
        poll_interval=poll_interval,
        threads=threads,
        workers=workers,
        backend=backend,
        max_body_bytes=max_body_bytes,
        public_metrics=public_metrics,
        public_docs=public_docs,
        allow_unverified_base=allow_unverified_base,
        log_format=log_format,
        log_level=_root_log_level(),
        access_log=access_log,
    )
    if ray_:
        _serve_on_ray(
            config,
            str(registry.home),
            replicas,
            address,
            autoscaling,
            replica_cpus=replica_cpus,
            ingress_cpus=ingress_cpus,
        )
        return
    run(config, registry, announce=click.echo)


def _serve_on_ray(
    config: ServeConfig,
    home: str,
    replicas: int,
    address: str | None,
    autoscaling: str | None,
    replica_cpus: float | None = None,
    ingress_cpus: float = 0.5,
) -> None:
    """`--ray`: the same app as a Ray Serve application (loradock.serving.ray)."""
    from loradock.registry.json_files import loads
    from loradock.serving.ray.app import RayOptions
    from loradock.serving.ray.app import run as run_ray

    try:
        scaling = loads(autoscaling) if autoscaling else None
    except ValueError as exc:
        raise click.BadParameter(f"{autoscaling!r} is not JSON ({exc}).", param_hint="--autoscaling") from None
    options = RayOptions(
        replicas=replicas,
        replica_cpus=replica_cpus,
        ingress_cpus=ingress_cpus,
        address=address,
        autoscaling=scaling,
        # Each replica's torch threads, as `serve run ... threads=N` sets them.
        threads=config.threads or RayOptions.threads,
    )
    run_ray(config, options, home, announce=click.echo)


def _root_log_level() -> str:
    """The root `--log-level` / ADAPTERS_LOG_LEVEL when given; a server logs at info otherwise."""
    ctx = click.get_current_context().find_root()
    return str(ctx.params.get("log_level") or "info")


COMMANDS = [serve]

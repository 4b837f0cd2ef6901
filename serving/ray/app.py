"""Building and running the Ray Serve application: `adapters serve --ray`, or Ray's own `serve run`.

    serve run loradock.serving.ray.app:build domains=medical@production replicas=2
    serve run serve_config.yaml     # import_path: loradock.serving.ray.app:build, args: {...}

Ray's config file may also override the `AdapterReplica` deployment (num_replicas,
autoscaling_config, max_ongoing_requests, ray_actor_options) as for any Serve deployment.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, get_args, get_type_hints

from ..config import ServeConfig, build_config
from ..connlimits import ConnectionLimits
from ..ports import check_bindable
from .errors import RayNotInstalledError, RayOptionsError
from .layout import cluster_cpus, local_cpus, plan, replicas_to_place

log = logging.getLogger(__name__)

APP_NAME = "loradock"
REPLICA_DEPLOYMENT = "AdapterReplica"
INGRESS_DEPLOYMENT = "Ingress"


@dataclass(frozen=True)
class RayOptions:
    """How the application is laid out on Ray; `autoscaling` is Ray's `autoscaling_config`, passed through."""

    replicas: int = 2
    replica_cpus: float | None = None  # None: 1 CPU each, or the share that fits the cluster (layout.plan)
    ingress_cpus: float = 0.5
    threads: int = 1  # torch threads per replica
    max_ongoing_requests: int = 256  # per replica: enough concurrency for its micro-batcher to fill batches
    retries: int = 3  # extra tries on another replica for a classify call whose replica died or was full
    spill: int = 16  # queue difference (one full batch) at which a hot adapter spills to another replica
    autoscaling: dict[str, Any] | None = None
    replica_env: dict[str, str] = field(default_factory=dict)  # e.g. {"ADAPTERS_HOME": ..., "HF_HUB_OFFLINE": "1"}
    address: str | None = None  # ray.init(address=...): "auto" joins a running cluster; None starts a local one

    def __post_init__(self) -> None:
        if self.replicas < 1 and self.autoscaling is None:
            raise RayOptionsError(f"replicas must be at least 1, got {self.replicas}.")
        for name in ("replica_cpus", "ingress_cpus"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise RayOptionsError(f"{name} must be > 0 CPUs, got {getattr(self, name)}.")
        if self.autoscaling is not None and not (
            isinstance(self.autoscaling, dict)
            and all(
                isinstance(self.autoscaling.get(k, 0), int)
                for k in ("min_replicas", "initial_replicas", "max_replicas")
            )
        ):
            raise RayOptionsError(
                f"autoscaling must be a JSON object with integer replica counts, e.g. "
                f'\'{{"min_replicas": 1, "max_replicas": 4}}\'; got {self.autoscaling!r:.200}.'
            )
        if self.threads < 1 or self.max_ongoing_requests < 1 or self.retries < 0 or self.spill < 0:
            raise RayOptionsError(
                "threads and max_ongoing_requests must be >= 1, retries and spill >= 0; got "
                f"{self.threads}, {self.max_ongoing_requests}, {self.retries}, {self.spill}."
            )


def require_ray() -> None:
    try:
        import ray  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        raise RayNotInstalledError() from None


def _env(config: ServeConfig, extra: dict[str, str]) -> dict[str, str]:
    """Environment every actor needs: the API key variable (its value) and offline Hub use."""
    env = {k: os.environ[k] for k in ("HF_HUB_OFFLINE", "HF_HOME") if k in os.environ}
    if config.api_key_env and config.api_key_env in os.environ:
        env[config.api_key_env] = os.environ[config.api_key_env]
    return {**env, **extra}


def build_app(config: ServeConfig, options: RayOptions | None = None, home: str | None = None) -> Any:
    """The bound application: one ingress (reads the registry at `home`) over the replica deployment."""
    require_ray()
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    from .ingress import Ingress
    from .replica import AdapterReplica
    from .router import AdapterAffinityRouter

    options = fit(options or RayOptions())
    scaling: dict[str, Any] = (
        {"autoscaling_config": options.autoscaling}
        if options.autoscaling is not None
        else {"num_replicas": options.replicas}
    )
    replica = serve.deployment(
        AdapterReplica,
        name=REPLICA_DEPLOYMENT,
        **scaling,
        max_ongoing_requests=options.max_ongoing_requests,
        ray_actor_options={
            "num_cpus": options.replica_cpus,
            "runtime_env": {"env_vars": _env(config, options.replica_env)},
        },
        # Validated from a dict: Ray declares these fields with Field(...) extras,
        # which type checkers misread as dict-typed keyword arguments.
        request_router_config=RequestRouterConfig.model_validate(
            {
                "request_router_class": AdapterAffinityRouter,
                "request_router_kwargs": {"spill": options.spill},
                "request_routing_stats_period_s": 1.0,
                "request_routing_stats_timeout_s": 5.0,
            }
        ),
    )
    ingress = serve.deployment(
        serve.ingress()(Ingress),
        name=INGRESS_DEPLOYMENT,
        num_replicas=1,
        max_ongoing_requests=4096,
        ray_actor_options={"num_cpus": options.ingress_cpus, "runtime_env": {"env_vars": _env(config, {})}},
    )
    # serve.deployment(cls) returns a Deployment; its stub types the decorator form only.
    return ingress.bind(config, home, replica.bind(config, options.threads), options.retries)  # type: ignore[attr-defined]


def fit(options: RayOptions, cpus: float | None = None) -> RayOptions:
    """`options` with its CPU shares fixed for a cluster of `cpus` (default: the one connected to, else
    this machine); RayOptionsError, before anything is deployed, for a layout Ray could never place."""
    if cpus is None:
        import ray

        cpus = cluster_cpus() if ray.is_initialized() else local_cpus()
    layout = plan(
        replicas_to_place(options.replicas, options.autoscaling), cpus, options.replica_cpus, options.ingress_cpus
    )
    return dataclasses.replace(options, replica_cpus=layout.replica_cpus)


def _coerce(value: Any, default: Any, hint: Any = None) -> Any:
    """A `serve run key=value` string as the type of the field's default (for an optional field, of its hint)."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    if default is None:  # `threads: int | None` must read "2" as 2, as the CLI's --threads does
        default = next((kind() for kind in get_args(hint) if kind in (bool, int, float)), None)
    if isinstance(default, bool):
        return value.lower() in ("1", "true", "yes")
    if isinstance(default, (int, float)):
        return type(default)(value)
    if default is None or isinstance(default, (dict, tuple)):
        return json.loads(value) if value[:1] in "{[" else value
    return value


def _split(args: dict[str, Any], cls: Any) -> dict[str, Any]:
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else None) for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    return {k: _coerce(v, defaults[k], hints[k]) for k, v in args.items() if k in defaults}


def build(args: dict[str, Any]) -> Any:
    """Ray's application builder: `serve run loradock.serving.ray.app:build domains=... replicas=2`.

    Keys: any ServeConfig field (domains as DOMAIN@REF,...), any RayOptions field
    (autoscaling as JSON or a YAML mapping), and `home` (the registry; default ADAPTERS_HOME).
    """
    from loradock.registry import Registry

    args = dict(args)
    home = args.pop("home", None)
    unknown = (
        set(args) - {f.name for f in dataclasses.fields(ServeConfig)} - {f.name for f in dataclasses.fields(RayOptions)}
    )
    if unknown:
        raise RayOptionsError(
            f"Unknown application argument(s) {sorted(unknown)}; use ServeConfig or RayOptions "
            "field names (domains, replicas, replica_cpus, autoscaling, max_batch_size, ...)."
        )
    with Registry(home) as registry:
        fields = _split(args, ServeConfig)
        config = build_config(registry, fields.pop("domains", None), fields.pop("base_model", None), **fields)
        home = str(registry.home)
    return build_app(config, RayOptions(**_split(args, RayOptions)), home)


def run(
    config: ServeConfig, options: RayOptions, home: str | None = None, announce: Callable[[str], None] | None = None
) -> None:
    """`adapters serve --ray`: start (or join) Ray, deploy, serve until interrupted."""
    require_ray()
    import ray
    from ray import serve

    def stop(*_: Any) -> None:  # SIGTERM (e.g. from a process manager) stops like Ctrl-C: the app is removed
        raise KeyboardInterrupt

    check_bindable(config.host, config.port)  # Serve's proxy would otherwise retry a taken port for ever
    local = options.address is None and not os.environ.get("RAY_ADDRESS")
    cpus: float | None = None
    start: dict[str, Any] = {}
    if local:  # refused before Ray starts: seconds, not a hang; the Ray started gets exactly these CPUs
        cpus = local_cpus()
        options = fit(options, cpus)
        start["num_cpus"] = math.ceil(cpus)
    ray.init(address=options.address, include_dashboard=False, ignore_reinit_error=True, **start)
    # After ray.init, which installs a SIGTERM handler of its own that exits at once: the app
    # would never be deleted, and replicas would leave their scratch folders behind.
    signal.signal(signal.SIGTERM, stop)
    deployed = False
    try:
        options = fit(options, cpus)  # a joined cluster: checked against its CPUs
        # Ray's proxy is its own uvicorn: keep-alive is the only connection limit it exposes; the header
        # deadline and connection cap belong to the reverse proxy in front (SECURITY.md, "Connections").
        serve.start(
            http_options={
                "host": config.host,
                "port": config.port,
                "keep_alive_timeout_s": ConnectionLimits().keep_alive_s,
            }
        )
        deployed = True  # from here on the app may exist, even half-deployed: it is deleted on the way out
        serve.run(build_app(config, options, home), name=APP_NAME, route_prefix="/")
        if announce is not None:
            count = "autoscaling" if options.autoscaling else f"{options.replicas} replica(s)"
            announce(
                f"Serving {', '.join(config.domains)} on Ray ({count} x {options.replica_cpus:g} CPU, ingress "
                f"{options.ingress_cpus:g} CPU) at http://{config.host}:{config.port} (docs at /docs)"
            )
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM, while deploying or serving: stop cleanly
    finally:
        if deployed:
            # Replicas stop gracefully (their __del__ removes their scratch folders) rather than being
            # killed with the Ray this process started.
            serve.delete(APP_NAME)
        ray.shutdown()  # stops a Ray this process started; only disconnects from a cluster it joined

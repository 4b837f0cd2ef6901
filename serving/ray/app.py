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
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from ..config import ServeConfig, base_for, default_domains, parse_domains
from ..connlimits import ConnectionLimits
from .errors import RayNotInstalledError, RayOptionsError

log = logging.getLogger(__name__)

APP_NAME = "loradock"
REPLICA_DEPLOYMENT = "AdapterReplica"
INGRESS_DEPLOYMENT = "Ingress"


@dataclass(frozen=True)
class RayOptions:
    """How the application is laid out on Ray; `autoscaling` is Ray's `autoscaling_config`, passed through."""

    replicas: int = 2
    replica_cpus: float = 1.0
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
            if getattr(self, name) <= 0:
                raise RayOptionsError(f"{name} must be > 0 CPUs, got {getattr(self, name)}.")
        if self.threads < 1 or self.max_ongoing_requests < 1 or self.retries < 0 or self.spill < 0:
            raise RayOptionsError("threads and max_ongoing_requests must be >= 1, retries and spill >= 0; got "
                                  f"{self.threads}, {self.max_ongoing_requests}, {self.retries}, {self.spill}.")


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

    options = options or RayOptions()
    scaling: dict[str, Any] = ({"autoscaling_config": options.autoscaling} if options.autoscaling is not None
                               else {"num_replicas": options.replicas})
    replica = serve.deployment(AdapterReplica, name=REPLICA_DEPLOYMENT, **scaling,
                               max_ongoing_requests=options.max_ongoing_requests,
                               ray_actor_options={"num_cpus": options.replica_cpus,
                                                  "runtime_env": {"env_vars": _env(config, options.replica_env)}},
                               request_router_config=RequestRouterConfig(
                                   request_router_class=AdapterAffinityRouter,
                                   request_router_kwargs={"spill": options.spill},
                                   request_routing_stats_period_s=1.0, request_routing_stats_timeout_s=5.0))
    ingress = serve.deployment(serve.ingress()(Ingress), name=INGRESS_DEPLOYMENT, num_replicas=1,
                               max_ongoing_requests=4096,
                               ray_actor_options={"num_cpus": options.ingress_cpus,
                                                  "runtime_env": {"env_vars": _env(config, {})}})
    return ingress.bind(config, home, replica.bind(config, options.threads), options.retries)


def _coerce(value: Any, default: Any) -> Any:
    """A `serve run key=value` string as the type of the field's default."""
    if not isinstance(value, str) or isinstance(default, str):
        return value
    if isinstance(default, bool):
        return value.lower() in ("1", "true", "yes")
    if isinstance(default, (int, float)):
        return type(default)(value)
    if default is None or isinstance(default, (dict, tuple)):
        return json.loads(value) if value[:1] in "{[" else value
    return value


def _split(args: dict[str, Any], cls: Any) -> dict[str, Any]:
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else None) for f in dataclasses.fields(cls)}
    return {k: _coerce(v, defaults[k]) for k, v in args.items() if k in defaults}


def build(args: dict[str, Any]) -> Any:
    """Ray's application builder: `serve run loradock.serving.ray.app:build domains=... replicas=2`.

    Keys: any ServeConfig field (domains as DOMAIN@REF,...), any RayOptions field
    (autoscaling as JSON or a YAML mapping), and `home` (the registry; default ADAPTERS_HOME).
    """
    from loradock.registry import Registry

    args = dict(args)
    home = args.pop("home", None)
    unknown = set(args) - {f.name for f in dataclasses.fields(ServeConfig)} - {f.name for f in dataclasses.fields(RayOptions)}
    if unknown:
        raise RayOptionsError(f"Unknown application argument(s) {sorted(unknown)}; use ServeConfig or RayOptions "
                              "field names (domains, replicas, replica_cpus, autoscaling, max_batch_size, ...).")
    with Registry(home) as registry:
        refs = parse_domains(args.pop("domains", None)) or default_domains(registry)
        config = ServeConfig(**{**_split(args, ServeConfig), "domains": refs})
        config = dataclasses.replace(config, base_model=base_for(registry, refs, args.get("base_model")))
        home = str(registry.home)
    return build_app(config, RayOptions(**_split(args, RayOptions)), home)


def run(config: ServeConfig, options: RayOptions, home: str | None = None,
        announce: Callable[[str], None] | None = None) -> None:
    """`adapters serve --ray`: start (or join) Ray, deploy, serve until interrupted."""
    require_ray()
    import ray
    from ray import serve

    def stop(*_: Any) -> None:  # SIGTERM (e.g. from a process manager) stops like Ctrl-C: the app is removed
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    ray.init(address=options.address, include_dashboard=False, ignore_reinit_error=True)
    # Ray's proxy is its own uvicorn: keep-alive is the only connection limit it exposes; the header
    # deadline and connection cap belong to the reverse proxy in front (SECURITY.md, "Connections").
    serve.start(http_options={"host": config.host, "port": config.port,
                              "keep_alive_timeout_s": ConnectionLimits().keep_alive_s})
    serve.run(build_app(config, options, home), name=APP_NAME, route_prefix="/")
    if announce is not None:
        count = "autoscaling" if options.autoscaling else f"{options.replicas} replica(s)"
        announce(f"Serving {', '.join(config.domains)} on Ray ({count}) at http://{config.host}:{config.port} "
                 "(docs at /docs)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.delete(APP_NAME)
        ray.shutdown()  # stops a Ray this process started; only disconnects from a cluster it joined

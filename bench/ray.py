"""Ray Serve routing for many adapters: our router vs stock `@serve.multiplexed` + `@serve.batch` vs no affinity.

One run, one local Ray (2 CPUs), 2 replicas of each contender on the embedded MiniLM base,
deployed one at a time; Zipf-distributed traffic (s=1.1) over N synthetic LoRA adapters
(r=4 on query/value, numpy-built, registered in a temp registry), one text per request,
a fixed number of requests in flight, sent through each contender's DeploymentHandle with
the adapter's content hash as Ray's multiplexed model id. Adapter bytes reach every
contender the same way (an object ref per content hash); every contender may keep the
same number of adapters per replica (CAPACITY).

  ours       serving/ray: AdapterAffinityRouter (resident first, rendezvous home, hot adapters
             spill), each replica's engine batches rows of any adapters together (max batch 16)
  stock      Ray's documented pattern: `@serve.multiplexed(max_num_models_per_replica=CAPACITY)`
             loads an adapter, `@serve.batch(max_batch_size=16)` batches calls (Ray splits each
             batch by model id), default power-of-two router with multiplex affinity
  no-affinity  our replicas behind Ray's default router, no model id: any replica, least loaded

Reports requests/s, p50/p99 latency, adapter loads per second and batch fill (rows per
batch / 16), and ratios of ours over the others.

    flock /tmp/loradock-bench.lock nice -n 5 python bench/ray.py          # 1,000 adapters
    python bench/ray.py --smoke                                            # 40 adapters, few requests
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Run as `python bench/ray.py`, this file's folder comes first on sys.path and `import ray` would find
# this file; drop it so the real Ray is imported.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

CAPACITY = 64  # adapters a replica keeps (our host tier; stock's max_num_models_per_replica)
MAX_BATCH = 16
TEXTS = [
    "Crushing chest pain radiating to the left arm.",
    "itchy rash",
    "A warm, funny and moving film.",
    "Dull.",
    "The treaty ended the war in 1648.",
    "Shortness of breath at night.",
]


def register_adapters(n: int, work: Path) -> tuple[Any, list[Any]]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.fixtures import write_adapter
    from loradock.adapters.base import base_info
    from loradock.registry import DEFAULT_BASE, Domain, Registry, VersionInfo

    registry = Registry(work / "home")
    info = VersionInfo(base_model=DEFAULT_BASE, base_fingerprint=base_info(DEFAULT_BASE)["base_fingerprint"])
    versions = []
    for i in range(n):
        name = f"d{i:04d}"
        registry.add_domain(Domain(name=name, labels=("a", "b", "c")))
        folder = write_adapter(work / "src" / name, labels=3, hidden=384, layers=6, r=4, seed=i)
        versions.append(registry.register(name, folder, info))
    return registry, versions


def stock_deployment(config: Any) -> Any:
    """Ray's documented multiplexing + batching, over the same model code and shipped bytes."""
    from ray import serve

    @serve.deployment(
        name="StockReplica", num_replicas=2, max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.5}
    )
    class StockReplica:
        def __init__(self, config: Any) -> None:
            import torch

            from loradock.serving.backends.torch_backend import MultiLoraModel
            from loradock.serving.ray.shipping import ShippedAdapters

            torch.set_num_threads(1)
            self.model = MultiLoraModel(config.base_model, "cpu", config.max_length)
            self.store = ShippedAdapters()
            self.pending: dict[str, tuple[Any, Any]] = {}
            self.loads = self.batches = self.rows = 0

        @serve.multiplexed(max_num_models_per_replica=CAPACITY)
        async def get_adapter(self, sha: str) -> Any:
            from loradock.serving.weights import read_adapter

            version, ref = self.pending[sha]
            folder = await self.store.receive(version, ref)
            self.loads += 1
            return self.model.prepare(read_adapter(version, folder))

        @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.005)
        async def run(self, texts: list[str]) -> list[list[float]]:
            weights = await self.get_adapter(serve.get_multiplexed_model_id())
            self.batches += 1
            self.rows += len(texts)
            rows = self.model.encode(texts)
            out = await asyncio.to_thread(self.model.run, rows, [weights] * len(rows))
            return [t.tolist() for t in out]

        async def classify(self, version: Any, shipment: list, texts: list[str]) -> dict:
            self.pending[version.sha256] = (version, shipment[0])
            return {"logits": [await self.run(texts[0])], "replica": str(id(self))}

        def stats(self) -> dict:
            return {"replica": str(id(self)), "loads": self.loads, "batches": self.batches, "rows": self.rows}

    return StockReplica.bind(config)


def our_deployment(config: Any, affinity: bool) -> Any:
    from ray import serve
    from ray.serve.config import RequestRouterConfig

    from loradock.serving.ray.replica import AdapterReplica
    from loradock.serving.ray.router import AdapterAffinityRouter

    extra: dict[str, Any] = {}
    if affinity:
        extra["request_router_config"] = RequestRouterConfig(
            request_router_class=AdapterAffinityRouter, request_routing_stats_period_s=1.0
        )
    name = "AdapterReplica" if affinity else "NoAffinityReplica"
    return serve.deployment(
        AdapterReplica,
        name=name,
        num_replicas=2,
        max_ongoing_requests=256,
        ray_actor_options={"num_cpus": 0.5},
        **extra,
    ).bind(config, 1)


def zipf_choices(n: int, count: int, s: float, seed: int) -> list[int]:
    weights = [1 / (k + 1) ** s for k in range(n)]
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)  # popularity unrelated to registration order
    return [order[i] for i in rng.choices(range(n), weights=weights, k=count)]


async def drive(
    handle: Any, versions: list[Any], shipments: list[Any], picks: list[int], in_flight: int, affinity: bool
) -> tuple[float, list[float], int]:
    queue = list(enumerate(picks))
    latencies: list[float] = []
    failures = 0

    async def worker() -> None:
        nonlocal failures
        while queue:
            i, k = queue.pop()
            v = versions[k]
            h = handle.options(multiplexed_model_id=v.sha256) if affinity else handle
            started = time.perf_counter()
            out = await h.classify.remote(v, [shipments[k]], [TEXTS[i % len(TEXTS)]])
            latencies.append(time.perf_counter() - started)
            failures += "error" in out

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return time.perf_counter() - started, latencies, failures


def collect_stats(handle: Any) -> list[dict]:
    seen: dict[str, dict] = {}
    for i in range(40):
        out = handle.options(multiplexed_model_id=f"probe-{i}").stats.remote().result(timeout_s=60)
        seen[out["replica"]] = out
        if len(seen) == 2:
            break
    return list(seen.values())


def run_one(
    name: str, app: Any, versions: list[Any], shipments: list[Any], picks: list[int], warmup: int, in_flight: int
) -> dict[str, Any]:
    from ray import serve

    affinity = name != "no-affinity"
    handle = serve.run(app, name=name, route_prefix=None)
    asyncio.run(drive(handle, versions, shipments, picks[:warmup], in_flight, affinity))
    before = collect_stats(handle)
    seconds, latencies, failures = asyncio.run(drive(handle, versions, shipments, picks[warmup:], in_flight, affinity))
    after = collect_stats(handle)
    serve.delete(name)

    def total(key: str, stats: list[dict]) -> int:
        return sum(s.get(key, 0) for s in stats)

    loads = total("loads", after) - total("loads", before)
    batches = total("batches", after) - total("batches", before)
    rows = total("rows", after) - total("rows", before)
    latencies.sort()
    return {
        "name": name,
        "requests": len(latencies),
        "failures": failures,
        "rps": len(latencies) / seconds,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
        "loads_per_s": loads / seconds,
        "batch_fill": rows / max(batches, 1) / MAX_BATCH,
        "loads": loads,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--smoke", action="store_true", help="40 adapters, 300 requests: checks the bench works")
    args = parser.parse_args()
    if args.smoke:
        args.adapters, args.requests = 40, 300
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ray

    from loradock.serving.config import ServeConfig
    from loradock.serving.ray.shipping import ship

    work = Path(tempfile.mkdtemp(prefix="loradock-bench-ray-"))
    t0 = time.perf_counter()
    registry, versions = register_adapters(args.adapters, work)
    print(f"registered {len(versions)} adapters in {time.perf_counter() - t0:.0f} s", flush=True)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}},
    )
    shipments = [ship(registry, v).ref for v in versions]
    config = ServeConfig(
        device="cpu", max_batch_size=MAX_BATCH, max_wait_ms=5.0, max_loaded=32, max_host=CAPACITY, max_queue=1024
    )
    picks = zipf_choices(len(versions), args.requests, args.zipf, seed=0)
    warmup = len(picks) // 10
    contenders = {
        "ours": lambda: our_deployment(config, True),
        "stock": lambda: stock_deployment(config),
        "no-affinity": lambda: our_deployment(config, False),
    }
    results = []
    for name, build in contenders.items():
        result = run_one(name, build(), versions, shipments, picks, warmup, args.in_flight)
        results.append(result)
        print(
            f"{name:12s} {result['rps']:7.1f} req/s  p50 {result['p50_ms']:7.1f} ms  p99 {result['p99_ms']:7.1f} ms  "
            f"loads/s {result['loads_per_s']:6.1f}  batch fill {result['batch_fill']:.2f}  "
            f"failures {result['failures']}",
            flush=True,
        )
    ours = results[0]
    for other in results[1:]:
        print(
            f"ours / {other['name']}: throughput x{ours['rps'] / other['rps']:.2f}, "
            f"adapter loads x{ours['loads'] / max(other['loads'], 1):.2f}"
        )
    print(
        f"({args.adapters} adapters, Zipf s={args.zipf}, {args.requests - warmup} measured requests, "
        f"{args.in_flight} in flight, 2 replicas x 0.5 CPU on a local Ray with 2 CPUs; machine shared)"
    )
    ray.shutdown()
    registry.close()


if __name__ == "__main__":
    main()

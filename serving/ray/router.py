"""Adapter-aware replica choice for Ray Serve: prefer replicas holding the adapter, never wait for them.

Ray's stock multiplexing (`PowerOfTwoChoicesRequestRouter` + `MultiplexMixin`) sends a
model id only to the replicas that report it for a while before falling back, and with
`@serve.batch` each batch then holds one model. Our replicas batch rows of any adapters
together and load a sub-MB adapter in milliseconds, so residency is a preference, not a rule:

1. The multiplexed model id is the adapter's content hash.
2. Preferred replicas: those reporting the hash resident (`record_routing_stats`), else its
   rendezvous-hash "home" replica, so a cold adapter lands on one stable replica.
3. A preferred replica whose queue is more than `spill` requests above the least-loaded
   replica loses its preference: a hot adapter spills to the next replica, which then holds
   it too, so hot adapters end up spread over several replicas instead of pinned to one.
4. Ties and the rest go to Ray (lowest queue among the first rank that accepts, then all).
"""

from __future__ import annotations

import hashlib
from typing import Any

from ray.serve.request_router import FIFOMixin, PendingRequest, RequestRouter, RunningReplica

RESIDENT = "resident"  # the routing-stats key a replica reports its resident content hashes under


def _rendezvous(sha: str, replica: RunningReplica) -> int:
    digest = hashlib.blake2b(f"{sha}:{replica.replica_id.unique_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class AdapterAffinityRouter(FIFOMixin, RequestRouter):
    """Residency-preferring, load-spilling router; pass it in `RequestRouterConfig`."""

    def initialize_state(self, spill: int = 16, **_: Any) -> None:
        self.spill = spill

    def _queue(self, replica: RunningReplica) -> int:
        return self.replica_queue_len_cache.get(replica.replica_id) or 0

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        sha = pending_request.metadata.multiplexed_model_id if pending_request is not None else ""
        if not sha or len(candidate_replicas) < 2:
            return [candidate_replicas]
        spill = getattr(self, "spill", 16)
        by_home = sorted(candidate_replicas, key=lambda r: _rendezvous(sha, r), reverse=True)
        queues = {r.replica_id: self._queue(r) for r in candidate_replicas}
        ceiling = min(queues.values()) + spill
        holders = [r for r in by_home if sha in (r.routing_stats or {}).get(RESIDENT, ())]
        preferred = [r for r in (holders or by_home[:1]) if queues[r.replica_id] <= ceiling]
        if not preferred:  # every holder is busy: the next replica in home order takes it (and then holds it)
            preferred = [next(r for r in by_home if queues[r.replica_id] <= ceiling)]
        return [preferred, candidate_replicas]

"""The adapter cache: content-hash keys, LRU tiers, pinning, reference counts, explicit 'all pinned'."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from loradock.serving.cache import AdapterCache
from loradock.serving.errors import AllPinnedError
from loradock.serving.weights import AdapterWeights


def version(sha: str, ref: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(sha256=sha, ref=ref or f"d@{sha}")


def make_cache(max_loaded: int = 2, max_host: int = 3):
    loads: list[str] = []
    removed: list[tuple[str, str]] = []

    def loader(v):
        loads.append(v.sha256)
        return AdapterWeights(v.sha256, v.ref, ["a", "b"], {}, torch.zeros(2, 4), torch.zeros(2), 100)

    cache = AdapterCache(loader, lambda w: w, max_loaded=max_loaded, max_host=max_host)
    cache.add_remove_hook(lambda sha, tier: removed.append((sha, tier)))
    return cache, loads, removed


def use(cache: AdapterCache, sha: str):
    """What a request does: lease, run a batch on the device, release."""
    entry = cache.lease(version(sha))
    cache.acquire_device([entry])
    cache.release_device([entry])
    cache.release(entry)
    return entry


def test_keys_are_content_hashes_not_names() -> None:
    cache, loads, _ = make_cache()
    a = cache.lease(version("aaa", "medical@1"))
    b = cache.lease(version("aaa", "medical@2"))  # same files under another number: one entry
    assert a is b and loads == ["aaa"] and cache.stats.hits == 1 and cache.stats.misses == 1


def test_device_tier_evicts_least_recently_used() -> None:
    cache, loads, removed = make_cache(max_loaded=2, max_host=10)
    use(cache, "a"), use(cache, "b"), use(cache, "a"), use(cache, "c")
    assert removed == [("b", "device")]  # b was least recently used on the device
    assert cache.entry("b").tier == "host" and cache.entry("a").tier == "device"
    use(cache, "b")
    assert loads == ["a", "b", "c"]  # b came back from host memory, not the registry


def test_host_tier_drops_lru_beyond_max_host() -> None:
    cache, loads, removed = make_cache(max_loaded=1, max_host=2)
    for sha in ("a", "b", "c"):
        use(cache, sha)
    assert cache.entry("a") is None and ("a", "host") in removed
    use(cache, "a")
    assert loads == ["a", "b", "c", "a"]


def test_pinned_and_in_use_adapters_are_never_evicted() -> None:
    cache, _, removed = make_cache(max_loaded=2, max_host=10)
    pinned = use(cache, "p")
    cache.pin("p")
    busy = cache.lease(version("busy"))
    cache.acquire_device([busy])  # a batch is running on it
    with pytest.raises(AllPinnedError, match=r"All 2 device slots hold pinned or in-use adapters \(1 pinned\)"):
        use(cache, "new")
    assert removed == [] and pinned.tier == "device" and busy.tier == "device"
    cache.release_device([busy])
    use(cache, "new")  # now `busy` can go
    assert removed == [("busy", "device")]


def test_all_pinned_is_an_explicit_error() -> None:
    cache, _, _ = make_cache(max_loaded=1)
    use(cache, "p")
    cache.pin("p")
    with pytest.raises(AllPinnedError, match="raise --max-loaded"):
        use(cache, "q")


def test_retired_version_is_freed_when_its_last_request_finishes() -> None:
    cache, _, removed = make_cache()
    old = cache.lease(version("old"))
    cache.pin("old")
    cache.acquire_device([old])
    cache.release_device([old])
    cache.unpin("old")
    cache.retire("old")  # the alias moved; one request is still in flight on it
    assert cache.entry("old") is old and removed == []
    cache.release(old)
    assert cache.entry("old") is None
    assert removed == [("old", "device"), ("old", "host")]
    assert cache.stats.evictions == {"device": 1, "host": 1}

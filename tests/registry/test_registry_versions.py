from __future__ import annotations

import json
from pathlib import Path

import pytest

from loradock.registry import LATEST, Registry, VersionInfo
from loradock.registry.errors import UnknownDomainError, UnknownVersionError
from tests.synthetic_adapters import write_adapter


def test_versions_number_from_one_and_latest_moves(registry: Registry, tmp_path: Path) -> None:
    v1 = registry.register("sentiment", write_adapter(tmp_path / "a", seed=1))
    v2 = registry.register("sentiment", write_adapter(tmp_path / "b", seed=2))
    assert (v1.number, v2.number) == (1, 2)
    assert registry.resolve("sentiment").number == 2
    assert registry.resolve("sentiment@latest").sha256 == v2.sha256
    assert LATEST in registry.resolve("sentiment@2").aliases
    assert LATEST not in registry.resolve("sentiment@1").aliases


def test_version_records_full_metadata(registry: Registry, tmp_path: Path) -> None:
    info = VersionInfo(
        base_model="tiny-bert",
        base_revision="abc",
        base_fingerprint="sha256:00",
        data={"source": "x.csv", "fingerprint": "f1"},
        metrics={"accuracy": 0.9},
        train_args={"lr": 1e-3},
        description="first",
        tags=["a"],
    )
    registry.register("medical", write_adapter(tmp_path / "a", labels=5), info)
    v2 = registry.register("medical", write_adapter(tmp_path / "b", labels=5, seed=3), VersionInfo(parent="medical@1"))
    v = registry.resolve("medical@1")
    assert v.base_fingerprint == "sha256:00" and v.base_revision == "abc"
    assert v.labels == ["cardiology", "dermatology", "gastroenterology", "neurology", "respiratory"]
    assert v.peft_config["r"] == 4 and v.peft_config["target_modules"] == ["query", "value"]
    assert v.peft_config["modules_to_save"] == ["classifier", "score"]
    assert v.data["fingerprint"] == "f1" and v.metrics["accuracy"] == 0.9 and v.train_args["lr"] == 1e-3
    assert v.description == "first" and v.tags == ["a"]
    assert set(v.files) == {"adapter_config.json", "adapter_model.safetensors"}
    assert v.size_bytes == sum(f["size"] for f in v.files.values())
    assert v2.parent == "medical@1"


def test_identical_files_stored_once(registry: Registry, tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a")
    a = registry.register("sentiment", folder)
    b = registry.register("sentiment", folder)
    assert b.reused and not a.reused and b.number == a.number == 1  # same content, same version
    c = registry.register("sentiment", folder, new_version=True)
    assert a.sha256 == c.sha256 and c.number == 2 and not c.reused
    assert len(list(registry.blobs.all())) == 2


def test_materialized_folder_has_identical_bytes(registry: Registry, tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a")
    registry.register("sentiment", folder)
    out = registry.path("sentiment@1")
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        assert (out / name).read_bytes() == (folder / name).read_bytes()


def test_user_domain_roundtrip(registry: Registry, tmp_path: Path) -> None:
    from loradock.registry import Domain

    registry.add_domain(Domain(name="legal", labels=("contract", "tort", "criminal")))
    assert registry.domain("legal").labels == ("contract", "tort", "criminal")
    assert registry.register("legal", write_adapter(tmp_path / "a", labels=3)).ref == "legal@1"
    reopened = Registry(registry.home)
    assert "legal" in reopened.domain_names()


def test_removed_numbers_are_never_reused(registry: Registry, tmp_path: Path) -> None:
    registry.register("sentiment", write_adapter(tmp_path / "a", seed=1))
    registry.register("sentiment", write_adapter(tmp_path / "b", seed=2))
    registry.remove("sentiment@2")
    assert registry.resolve("sentiment").number == 1
    with pytest.raises(UnknownVersionError):
        registry.resolve("sentiment@2")
    assert registry.register("sentiment", write_adapter(tmp_path / "c", seed=3)).number == 3


def test_events_log_every_change(registry: Registry, tmp_path: Path) -> None:
    registry.register("sentiment", write_adapter(tmp_path / "a"), aliases=["production"])
    actions = [e.action for e in registry.events()]
    assert actions == ["domain.add", "version.add", "alias.set"]
    assert registry.events(since_id=registry.last_event_id()) == []


def test_gc_removes_only_unreferenced_blobs(registry: Registry, tmp_path: Path) -> None:
    registry.register("sentiment", write_adapter(tmp_path / "a", seed=1))
    registry.register("sentiment", write_adapter(tmp_path / "b", seed=2))
    registry.remove("sentiment@1")
    dry = registry.gc(dry_run=True)
    assert len(dry.removed) == 1  # the config is identical; only v1's weights are garbage
    assert len(list(registry.blobs.all())) == 3
    real = registry.gc()
    assert real.removed == dry.removed
    assert registry.verify().ok
    registry.path("sentiment@2")


def test_domain_json_listing(registry: Registry) -> None:
    with pytest.raises(UnknownDomainError) as err:
        registry.versions("nope")
    assert "adapters domains add nope" in str(err.value)
    assert json.loads(json.dumps([d.to_row() for d in registry.domains()]))


def test_gc_racing_a_register_cannot_take_its_blobs(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = Registry(registry.home)
    store = registry._store_files

    def store_then_gc(files):
        stored = store(files)
        assert other.gc().removed  # another process collects the not-yet-referenced blobs
        return stored

    monkeypatch.setattr(registry, "_store_files", store_then_gc)
    registry.register("sentiment", write_adapter(tmp_path / "a"))
    assert registry.verify().ok
    assert registry.path("sentiment@1").is_dir()


def test_registering_the_same_bytes_again_repairs_a_rotted_blob(registry: Registry, tmp_path: Path) -> None:
    folder = write_adapter(tmp_path / "a")
    version = registry.register("sentiment", folder)
    blob = registry.blobs.path(version.files["adapter_model.safetensors"]["sha256"])
    data = bytearray(blob.read_bytes())
    data[100] ^= 0x01
    blob.write_bytes(bytes(data))
    assert not registry.verify().ok
    registry.register("sentiment", folder)
    assert registry.verify().ok
    assert registry.path("sentiment@1").is_dir()

"""Quality gates in the registry: failed versions are kept but never promoted."""

from __future__ import annotations

from pathlib import Path

import pytest

from loradock.registry import Registry, VersionInfo
from loradock.registry.errors import FailedVersionError, GateError, InvalidNameError, UnknownVersionError
from loradock.registry.gates import QualityGate, check, majority_baseline
from tests.synthetic_adapters import write_adapter

COUNTS = {"negative": 6, "positive": 4}


def _info(accuracy: float, macro_f1: float, gate: QualityGate = QualityGate()) -> VersionInfo:
    metrics = {"accuracy": accuracy, "macro_f1": macro_f1}
    return VersionInfo(metrics=metrics, gate=check(metrics, COUNTS, gate))


def _register(registry: Registry, tmp_path: Path, seed: int, info: VersionInfo, **kw) -> object:
    return registry.register("sentiment", write_adapter(tmp_path / f"a{seed}", seed=seed), info, **kw)


def test_majority_baseline_is_always_predicting_the_most_frequent_label() -> None:
    base = majority_baseline({"a": 6, "b": 4, "c": 0})
    assert base["label"] == "a"
    assert base["accuracy"] == pytest.approx(0.6)
    # F1 of "a" is 2*0.6/1.6 = 0.75; "b" scores 0; "c" is absent from the split.
    assert base["macro_f1"] == pytest.approx(0.375)


def test_a_model_predicting_the_majority_class_fails_and_a_better_one_passes() -> None:
    tied = check({"accuracy": 0.6, "macro_f1": 0.375}, COUNTS, QualityGate())
    assert tied["passed"] is False and "majority-class baseline" in tied["reasons"][0]
    assert check({"accuracy": 0.8, "macro_f1": 0.79}, COUNTS, QualityGate())["passed"] is True
    strict = check({"accuracy": 0.8, "macro_f1": 0.79}, COUNTS, QualityGate(min_accuracy=0.9))
    assert strict["passed"] is False and strict["reasons"] == ["accuracy 0.8000 < 0.9"]


def test_gate_thresholds_are_validated() -> None:
    with pytest.raises(InvalidNameError, match="min_accuracy must be between 0 and 1, got 1.5"):
        QualityGate(min_accuracy=1.5)


def test_failed_version_is_stored_but_latest_and_aliases_stay_on_the_good_one(
    registry: Registry, tmp_path: Path
) -> None:
    good = _register(registry, tmp_path, 1, _info(0.9, 0.9), aliases=["production"])
    bad = _register(registry, tmp_path, 2, _info(0.6, 0.375))
    assert bad.number == 2 and bad.failed and not good.failed
    assert registry.resolve("sentiment@latest").number == 1
    assert registry.resolve("sentiment@2").gate["passed"] is False
    assert "latest" in registry.resolve("sentiment@1").aliases

    with pytest.raises(FailedVersionError, match="sentiment@2 failed its quality gate.*--force") as info:
        registry.set_alias("sentiment", "production", 2)
    assert isinstance(info.value, GateError)
    assert registry.resolve("sentiment@production").number == 1

    assert registry.set_alias("sentiment", "production", 2, force=True).number == 2
    assert registry.resolve("sentiment@production").number == 2


def test_register_refuses_an_alias_for_a_failed_version_before_storing(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(FailedVersionError):
        _register(registry, tmp_path, 1, _info(0.5, 0.3), aliases=["staging"])
    assert registry.versions("sentiment") == []


def test_latest_when_every_version_failed_names_the_failed_one(registry: Registry, tmp_path: Path) -> None:
    _register(registry, tmp_path, 1, _info(0.6, 0.375))
    with pytest.raises(UnknownVersionError, match="failed its quality gate.*adapters show sentiment@1"):
        registry.resolve("sentiment@latest")


def test_versions_without_a_gate_check_count_as_good(registry: Registry, tmp_path: Path) -> None:
    _register(registry, tmp_path, 1, VersionInfo())
    assert registry.resolve("sentiment@latest").number == 1
    assert registry.resolve("sentiment@1").gate == {}


def test_domain_gate_is_stored_and_edited(registry: Registry) -> None:
    registry.update_domain("medical", gate=QualityGate(min_accuracy=0.9, min_macro_f1=0.85))
    assert Registry(registry.home).domain("medical").gate == QualityGate(0.9, 0.85)

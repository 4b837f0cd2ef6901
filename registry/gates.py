"""Quality gates: is a version better than guessing, and good enough for its domain?

Every trained version is compared with the majority-class baseline of its own
eval split (always predict the most frequent label): a model that does not
beat it on both accuracy and macro-F1 learned nothing usable. A domain may add
thresholds (`QualityGate`), and one run may tighten or loosen them. A version
that fails is still stored, marked failed, so its plots explain why; aliases
and `latest` do not move to it (registry/store.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .errors import InvalidNameError


@dataclass(frozen=True)
class QualityGate:
    """Minimum eval metrics a domain's versions must reach; None means no minimum."""

    min_accuracy: float | None = None
    min_macro_f1: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_accuracy", "min_macro_f1"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise InvalidNameError(f"{name} must be between 0 and 1, got {value!r}.")

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> QualityGate:
        data = data or {}
        return cls(min_accuracy=data.get("min_accuracy"), min_macro_f1=data.get("min_macro_f1"))

    def merged(self, override: QualityGate) -> QualityGate:
        """This gate with every threshold `override` sets replacing ours."""
        return QualityGate(
            min_accuracy=override.min_accuracy if override.min_accuracy is not None else self.min_accuracy,
            min_macro_f1=override.min_macro_f1 if override.min_macro_f1 is not None else self.min_macro_f1,
        )

    def describe(self) -> str:
        parts = [f"accuracy >= {self.min_accuracy:g}" if self.min_accuracy is not None else "",
                 f"macro-F1 >= {self.min_macro_f1:g}" if self.min_macro_f1 is not None else ""]
        return ", ".join(["beat the majority class", *(p for p in parts if p)])


def majority_baseline(label_counts: Mapping[str, int]) -> dict[str, Any]:
    """Accuracy and macro-F1 of always predicting the most frequent label of an eval split."""
    present = {k: v for k, v in label_counts.items() if v > 0}
    total = sum(present.values())
    if not total:
        return {"label": None, "accuracy": 0.0, "macro_f1": 0.0}
    label = max(sorted(present), key=lambda k: present[k])  # ties: the first name, stably
    share = present[label] / total
    # The majority class gets precision=share, recall=1; every other present class F1 0.
    return {"label": label, "accuracy": share, "macro_f1": (2 * share / (1 + share)) / len(present)}


def check(metrics: Mapping[str, Any], label_counts: Mapping[str, int], gate: QualityGate) -> dict[str, Any]:
    """The gate result stored with a version: passed, the baseline, the thresholds and why it failed."""
    baseline = majority_baseline(label_counts)
    accuracy, macro_f1 = float(metrics.get("accuracy") or 0.0), float(metrics.get("macro_f1") or 0.0)
    reasons: list[str] = []
    # Strictly above on both: predicting the majority class ties on accuracy and must fail.
    if not (accuracy > baseline["accuracy"] and macro_f1 > baseline["macro_f1"]):
        reasons.append(
            f"does not beat the majority-class baseline (always {baseline['label']!r}: accuracy "
            f"{baseline['accuracy']:.4f}, macro-F1 {baseline['macro_f1']:.4f}; got {accuracy:.4f}, {macro_f1:.4f})"
        )
    if gate.min_accuracy is not None and accuracy < gate.min_accuracy:
        reasons.append(f"accuracy {accuracy:.4f} < {gate.min_accuracy:g}")
    if gate.min_macro_f1 is not None and macro_f1 < gate.min_macro_f1:
        reasons.append(f"macro-F1 {macro_f1:.4f} < {gate.min_macro_f1:g}")
    return {"passed": not reasons, "reasons": reasons, "baseline": baseline, **gate.to_dict()}


def summary(gate: Mapping[str, Any] | None) -> str:
    """One word for listings: passed, FAILED, or - (registered without a gate check)."""
    if not gate or "passed" not in gate:
        return "-"
    return "passed" if gate["passed"] else "FAILED"


def reasons_text(gate: Mapping[str, Any] | None) -> str:
    reasons: Sequence[str] = (gate or {}).get("reasons") or []
    return "; ".join(reasons)

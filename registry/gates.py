"""Quality gates: is a version better than guessing, and good enough for its domain?

Every trained version is compared with the majority-class baseline of its own
eval split (always predict the most frequent label): a model that does not
beat it on both accuracy and macro-F1 learned nothing usable. A domain may add
thresholds (`QualityGate`), and one run may tighten or loosen them.

The baseline comparison is paired like every gate's (registry/gate_stats.py):
on the eval texts, `gains` are those the model gets right and the baseline
wrong, `losses` the other way, and McNemar's exact test says whether the win
is more than noise. The burden runs the other way from an export's: a
version must show it learned something, so a tie fails (a model that always
predicts the majority class ties exactly); a win the paired test cannot tell
from noise passes but says so in the record's `note`. A version
that fails is still stored, marked failed, so its plots explain why; aliases
and `latest` do not move to it (registry/store.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from . import gate_stats
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
        parts = [
            f"accuracy >= {self.min_accuracy:g}" if self.min_accuracy is not None else "",
            f"macro-F1 >= {self.min_macro_f1:g}" if self.min_macro_f1 is not None else "",
        ]
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


def against_baseline(
    per_class: Mapping[str, Mapping[str, float]] | None, label_counts: Mapping[str, int], baseline_label: str | None
) -> dict[str, Any] | None:
    """The model vs the majority baseline on the same texts (gains, losses, McNemar p); None without per-class data."""
    total = sum(v for v in label_counts.values() if v > 0)
    if not per_class or baseline_label is None or not total:
        return None
    right = {name: round(float(v.get("recall", 0.0)) * int(v.get("support", 0))) for name, v in per_class.items()}
    baseline_right = int(label_counts[baseline_label])
    gains = sum(n for name, n in right.items() if name != baseline_label)
    losses = baseline_right - right.get(baseline_label, 0)
    p = gate_stats.mcnemar_p(gains, losses)  # one-sided: the model's wins beyond noise
    return {
        "texts": total,
        "gains": gains,
        "losses": losses,
        "mcnemar_p": p,
        "alpha": gate_stats.ALPHA,
        "statistic": gate_stats.MCNEMAR,
        "beyond_noise": gains > losses and p < gate_stats.ALPHA,
    }


def check(metrics: Mapping[str, Any], label_counts: Mapping[str, int], gate: QualityGate) -> dict[str, Any]:
    """The gate result stored with a version: passed, the baseline, the thresholds and why it failed."""
    baseline = majority_baseline(label_counts)
    accuracy, macro_f1 = float(metrics.get("accuracy") or 0.0), float(metrics.get("macro_f1") or 0.0)
    paired = against_baseline(metrics.get("per_class"), label_counts, baseline["label"])
    counts = (
        f"; {paired['gains']} texts won, {paired['losses']} lost of {paired['texts']}, McNemar exact "
        f"p={paired['mcnemar_p']:.2g}"
        if paired
        else ""
    )
    reasons: list[str] = []
    # Strictly above on both: predicting the majority class ties on accuracy and must fail.
    if not (accuracy > baseline["accuracy"] and macro_f1 > baseline["macro_f1"]):
        reasons.append(
            f"does not beat the majority-class baseline (always {baseline['label']!r}: accuracy "
            f"{baseline['accuracy']:.4f}, macro-F1 {baseline['macro_f1']:.4f}; got {accuracy:.4f}, {macro_f1:.4f}"
            f"{counts})"
        )
    if gate.min_accuracy is not None and accuracy < gate.min_accuracy:
        reasons.append(f"accuracy {accuracy:.4f} < {gate.min_accuracy:g}")
    if gate.min_macro_f1 is not None and macro_f1 < gate.min_macro_f1:
        reasons.append(f"macro-F1 {macro_f1:.4f} < {gate.min_macro_f1:g}")
    result: dict[str, Any] = {"passed": not reasons, "reasons": reasons, "baseline": baseline, **gate.to_dict()}
    if paired is not None:
        result["baseline_test"] = paired
        if not reasons and not paired["beyond_noise"]:
            result["note"] = (
                f"beats the majority-class baseline{counts}: a paired test cannot tell that win from "
                "noise on this eval split; more eval data would"
            )
    return result


def summary(gate: Mapping[str, Any] | None) -> str:
    """One word for listings: passed, FAILED, or - (registered without a gate check)."""
    if not gate or "passed" not in gate:
        return "-"
    return "passed" if gate["passed"] else "FAILED"


def reasons_text(gate: Mapping[str, Any] | None) -> str:
    reasons: Sequence[str] = (gate or {}).get("reasons") or []
    return "; ".join(reasons)

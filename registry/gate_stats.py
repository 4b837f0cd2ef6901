"""When is a difference between two accuracies on the same texts more than noise? The one rule every gate uses.

A gate compares a candidate (an int8 graph, an export, a trained model) with
a reference (fp32, the adapter, the majority baseline) on the same labelled
texts. Only the texts where exactly one of them is right carry information:
`losses` (reference right, candidate wrong) and `gains` (the other way).
On 20 texts one loss is 5 points, yet it says nothing: a paired test
(McNemar's exact test, a binomial test on losses among the discordant texts)
cannot tell it from a coin. The verdict therefore uses, in this order:

1. the measured drop within the limit: kept;
2. fewer than `MIN_TEXTS` labelled texts: 'not enough data to refuse';
3. a binomial bound on changed predictions over every text both were run on
   (eval plus training texts; no labels needed): a candidate cannot lose
   more accuracy than the share of predictions it changes, so when the
   one-sided upper bound on that share is within the limit: kept;
4. McNemar exact, one-sided: losses not beyond noise at `ALPHA`: kept;
   otherwise refused.

The record carries the numbers, the statistic that decided and the verdict,
so `recheck` can confirm a stored verdict from its stored numbers alone.
Pure python (math.comb): registry/ imports no numeric libraries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ALPHA = 0.05  # one-sided: the chance of refusing a candidate that loses nothing
CONFIDENCE = 1 - ALPHA
# Below this many labelled texts one changed prediction is 10+ points: no drop measured there is evidence.
MIN_TEXTS = 10

KEPT, REFUSED, TOO_FEW = "kept", "refused", "not enough data to refuse"
WITHIN_LIMIT, MIN_COUNT, BINOMIAL_BOUND, MCNEMAR = (
    "accuracy drop within the limit",
    "minimum count",
    "binomial bound on changed predictions",
    "McNemar exact",
)


@dataclass(frozen=True)
class Paired:
    """Reference and candidate on the same labelled texts: how many each got right, and where they differ."""

    texts: int
    reference_right: int
    candidate_right: int
    losses: int  # reference right, candidate wrong
    gains: int  # candidate right, reference wrong

    @classmethod
    def from_predictions(cls, gold: Sequence[Any], reference: Sequence[Any], candidate: Sequence[Any]) -> Paired:
        rows = list(zip(gold, reference, candidate, strict=True))
        return cls(
            len(rows),
            sum(r == g for g, r, _ in rows),
            sum(c == g for g, _, c in rows),
            sum(r == g != c for g, r, c in rows),
            sum(c == g != r for g, r, c in rows),
        )

    @property
    def drop(self) -> float:
        """Accuracy points the candidate loses against the reference (negative: it gains)."""
        return 100.0 * (self.reference_right - self.candidate_right) / self.texts if self.texts else 0.0


@dataclass(frozen=True)
class Agreement:
    """On how many texts (labels not needed) the candidate's prediction differs from the reference's."""

    texts: int
    changed: int

    @classmethod
    def from_predictions(cls, reference: Sequence[Any], candidate: Sequence[Any]) -> Agreement:
        pairs = list(zip(reference, candidate, strict=True))
        return cls(len(pairs), sum(r != c for r, c in pairs))


def binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2), exactly."""
    if k <= 0:
        return 1.0
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2**n


def mcnemar_p(losses: int, gains: int) -> float:
    """One-sided exact McNemar p-value: the chance of at least this many losses if both were equally good."""
    return binomial_tail(losses, losses + gains)


def _binomial_cdf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    logs = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * math.log(p) + (n - i) * math.log1p(-p)
        for i in range(k + 1)
    ]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(x - top) for x in logs))


def upper_bound(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """One-sided exact (Clopper-Pearson) upper confidence bound on a rate seen k times in n."""
    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    low, high = k / n, 1.0
    for _ in range(60):  # bisection on P(X <= k | p) = 1 - confidence, which falls as p grows
        mid = (low + high) / 2
        if _binomial_cdf(k, n, mid) > 1 - confidence:
            low = mid
        else:
            high = mid
    return high


def decide(
    paired: Paired,
    max_drop: float,
    agreement: Agreement | None = None,
    names: tuple[str, str] = ("fp32", "int8"),
    alpha: float = ALPHA,
    min_texts: int = MIN_TEXTS,
) -> dict[str, Any]:
    """The verdict on `paired` for an allowed drop of `max_drop` points: numbers, deciding statistic, one-line reason."""
    reference, candidate = names
    p = mcnemar_p(paired.losses, paired.gains)
    bound = upper_bound(agreement.changed, agreement.texts, 1 - alpha) if agreement and agreement.texts else None
    if paired.drop <= max_drop:
        verdict, statistic = KEPT, WITHIN_LIMIT
        why = f"within the {max_drop:g}-point limit"
    elif paired.texts < min_texts:
        verdict, statistic = TOO_FEW, MIN_COUNT
        why = f"fewer than {min_texts} labelled texts cannot show a loss"
    elif agreement is not None and bound is not None and 100 * bound <= max_drop:
        verdict, statistic = KEPT, BINOMIAL_BOUND
        why = (
            f"{candidate} changes at most {100 * bound:.2f}% of predictions ({1 - alpha:.0%} bound, "
            f"{agreement.changed} of {agreement.texts} texts), so it cannot lose {max_drop:g} points"
        )
    elif p >= alpha:
        verdict, statistic = KEPT, MCNEMAR
        why = f"a paired test (McNemar exact, p={p:.2g}) cannot tell that from noise"
    else:
        verdict, statistic = REFUSED, MCNEMAR
        why = f"a paired test (McNemar exact, p={p:.2g}) says the loss is real, over the {max_drop:g}-point limit"
    changed = paired.losses + paired.gains
    reason = (
        f"{changed} of {paired.texts} eval texts changed ({paired.losses} now wrong, {paired.gains} now right; "
        f"{candidate} {_pct(paired.candidate_right, paired.texts)} vs {reference} "
        f"{_pct(paired.reference_right, paired.texts)}, {paired.drop:+.2f} points lost); {why}; {verdict}"
    )
    record: dict[str, Any] = {
        "verdict": verdict,
        "passed": verdict != REFUSED,
        "statistic": statistic,
        "reason": reason,
        "eval_size": paired.texts,
        "reference_right": paired.reference_right,
        "candidate_right": paired.candidate_right,
        "losses": paired.losses,
        "gains": paired.gains,
        "accuracy_drop": paired.drop,
        "max_accuracy_drop": max_drop,
        "mcnemar_p": p,
        "alpha": alpha,
        "min_texts": min_texts,
        "reference": reference,
        "candidate": candidate,
    }
    if agreement is not None:
        record["agreement"] = {"texts": agreement.texts, "changed": agreement.changed, "changed_upper_bound": bound}
    return record


def _pct(right: int, texts: int) -> str:
    return f"{100 * right / texts:.2f}%" if texts else "n/a"


def from_record(record: Mapping[str, Any]) -> tuple[Paired, Agreement | None]:
    """The numbers a verdict was decided on, read back from its record."""
    paired = Paired(
        int(record["eval_size"]),
        int(record["reference_right"]),
        int(record["candidate_right"]),
        int(record["losses"]),
        int(record["gains"]),
    )
    found = record.get("agreement")
    return paired, (Agreement(int(found["texts"]), int(found["changed"])) if found else None)


def recheck(record: Mapping[str, Any], max_drop: float | None = None) -> dict[str, Any] | None:
    """The verdict the record's own numbers give (at `max_drop`, default the recorded limit); None: no numbers.

    A record whose stored verdict differs from `recheck(record)["verdict"]` was
    edited or written by other rules.
    """
    if "losses" not in record:
        return None
    paired, agreement = from_record(record)
    limit = float(record["max_accuracy_drop"]) if max_drop is None else max_drop
    names = (str(record.get("reference", "fp32")), str(record.get("candidate", "int8")))
    return decide(
        paired,
        limit,
        agreement,
        names,
        alpha=float(record.get("alpha", ALPHA)),
        min_texts=int(record.get("min_texts", MIN_TEXTS)),
    )

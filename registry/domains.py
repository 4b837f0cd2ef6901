"""Domains: a named use with its task, labels, base model and training recipe."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import InvalidNameError
from .gates import QualityGate
from .names import check_name

DEFAULT_BASE = "sentence-transformers/all-MiniLM-L6-v2"
TASKS = ("text-classification",)


@dataclass(frozen=True)
class LoraRecipe:
    """LoRA and optimiser settings; validated like PEFT's LoraConfig."""

    r: int = 8
    alpha: int = 32
    dropout: float = 0.1
    target_modules: tuple[str, ...] = ("query", "value")
    # None: chosen from the data's rows and classes at training time
    # (adapters/training/recipe.py, measured in BENCHMARKS.md); a value here
    # is the domain's own choice and wins.
    lr: float | None = None
    batch_size: int = 16
    epochs: int | None = None
    max_length: int = 256

    def __post_init__(self) -> None:
        checks = [
            (self.r >= 1, f"r must be >= 1, got {self.r}"),
            (self.alpha > 0, f"alpha must be > 0, got {self.alpha}"),
            (0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}"),
            (len(self.target_modules) > 0, "target_modules must name at least one module"),
            (self.lr is None or self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}"),
            (self.epochs is None or self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (8 <= self.max_length <= 8192, f"max_length must be in [8, 8192], got {self.max_length}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidNameError(message)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoraRecipe:
        data = dict(data)
        data["target_modules"] = tuple(data.get("target_modules", cls.target_modules))
        return cls(**data)


@dataclass(frozen=True)
class Domain:
    """A domain preset or a user-defined one."""

    name: str
    labels: tuple[str, ...]
    task: str = "text-classification"
    base_model: str = DEFAULT_BASE
    base_revision: str | None = None
    dataset: str | None = None
    description: str = ""
    recipe: LoraRecipe = field(default_factory=LoraRecipe)
    preset: bool = False
    gate: QualityGate = field(default_factory=QualityGate)

    def __post_init__(self) -> None:
        check_name(self.name, "domain")
        if self.task not in TASKS:
            raise InvalidNameError(
                f"Unsupported task {self.task!r} for domain {self.name!r}: use one of {', '.join(TASKS)}."
            )
        if len(self.labels) < 2:
            raise InvalidNameError(
                f"Domain {self.name!r} needs at least 2 labels, got {list(self.labels)}: pass --labels a,b."
            )
        if len(set(self.labels)) != len(self.labels):
            raise InvalidNameError(f"Domain {self.name!r} has duplicate labels: {list(self.labels)}.")
        for label in self.labels:
            # Labels travel in pulled records: no control characters, so none can pass for another.
            if (
                not isinstance(label, str)
                or not label.strip()
                or "," in label
                or len(label) > 200
                or any(ord(c) < 32 or ord(c) == 127 for c in label)
            ):
                raise InvalidNameError(f"Invalid label {label!r} in domain {self.name!r}.")

    def to_row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "labels": list(self.labels),
            "base_model": self.base_model,
            "base_revision": self.base_revision,
            "dataset": self.dataset,
            "description": self.description,
            "recipe": self.recipe.to_dict(),
            "preset": int(self.preset),
            "gate": self.gate.to_dict(),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Domain:
        import json

        def load(v: Any) -> Any:
            return json.loads(v) if isinstance(v, str) else v

        return cls(
            name=row["name"],
            task=row["task"],
            labels=tuple(load(row["labels"])),
            base_model=row["base_model"],
            base_revision=row["base_revision"],
            dataset=row["dataset"],
            description=row["description"] or "",
            recipe=LoraRecipe.from_dict(load(row["recipe"])),
            preset=bool(row["preset"]),
            gate=QualityGate.from_dict(load(row.get("gate"))),
        )


PRESETS: dict[str, Domain] = {
    d.name: d
    for d in (
        Domain(
            name="medical",
            labels=("cardiology", "dermatology", "gastroenterology", "neurology", "respiratory"),
            dataset="embedded:medical",
            description="Route a patient's message to the clinical specialty it concerns.",
            preset=True,
        ),
        Domain(
            name="education",
            labels=("history", "language", "math", "science"),
            dataset="embedded:education",
            description="Tag a student's question with its school subject.",
            preset=True,
        ),
        Domain(
            name="sentiment",
            labels=("negative", "positive"),
            dataset="embedded:sentiment",
            description="Polarity of a review or comment.",
            preset=True,
        ),
    )
}

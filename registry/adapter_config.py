"""`adapter_config.json`, read once into a typed, validated `AdapterConfig`.

The one reader of the file (STYLE.md, after vLLM's `peft_helper.py`): register, pull,
base metadata and the server's weight reader all receive this object, so a version
that registers is one the server can apply. It refuses what the server cannot serve
(DoRA, `lora_bias`, ...) at register time, with the same message the server would give,
and computes the LoRA scaling the way PEFT does, per module through rank and alpha
patterns. No torch here: the registry reads it too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

from . import json_files, target_modules
from .errors import InvalidAdapterError
from .regular_files import is_regular, open_regular

CONFIG = "adapter_config.json"
MAX_JSON_BYTES = 4 << 20  # a PEFT config is a few hundred bytes; register and pull share this cap
# PEFT's LoraConfig default, used when a hand-written config leaves lora_alpha out.
DEFAULT_ALPHA = 8
# PEFT features whose maths differ from plain `x + B(A(x)) * scale`; refused rather than served wrong.
UNSERVED_FEATURES = ("use_dora", "lora_bias", "fan_in_fan_out", "use_qalora", "use_bdlora")
# Head modules PEFT saves for task_type SEQ_CLS whatever modules_to_save says.
DEFAULT_HEADS = ("classifier", "score")
CAUSAL_LM = "CAUSAL_LM"  # PEFT's task_type for text generation
PEFT_PREFIX = "base_model.model."
LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])\.weight$")
# The head's last Linear (what maps features to labels), per head layout: BERT-style, RoBERTa/ELECTRA-style.
FINAL_LINEAR = ("classifier", "classifier.out_proj", "score")
_UNSERVED = (
    "{where}: {flag}={value!r} is a PEFT feature loradock does not serve (its maths differ from "
    "x + B(A(x)) * scale, so the server would answer wrongly). Merge it into its base with PEFT's "
    "merge_and_unload() and use the merged model, or retrain without {flag}."
)


@dataclass(frozen=True)
class AdapterConfig:
    """A LoRA adapter's PEFT config, checked at construction.

    `where` names the file (or the version) in messages. `target_modules` is a
    regex string or a tuple of module names; pattern keys are regexes, all bounded
    by target_modules.py. `raw` keeps the object as read, for fields not typed here.
    """

    where: str
    r: int
    target_modules: str | tuple[str, ...]
    peft_type: str = "LORA"
    task_type: str | None = None
    lora_alpha: float = DEFAULT_ALPHA
    lora_dropout: float | None = None
    rank_pattern: Mapping[str, int] = field(default_factory=dict)
    alpha_pattern: Mapping[str, float] = field(default_factory=dict)
    modules_to_save: tuple[str, ...] = ()
    use_rslora: bool = False
    use_dora: bool = False
    lora_bias: bool = False
    fan_in_fan_out: bool = False
    use_qalora: bool = False
    use_bdlora: bool = False
    base_model_name_or_path: str | None = None
    revision: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.peft_type != "LORA":
            raise InvalidAdapterError(
                f"{self.where}: peft_type is {self.peft_type!r}; only LORA adapters are "
                "supported. Train a LoRA adapter (LoraConfig) and save it with save_pretrained()."
            )
        for flag in UNSERVED_FEATURES:
            if getattr(self, flag):
                raise InvalidAdapterError(_UNSERVED.format(where=self.where, flag=flag, value=getattr(self, flag)))
        _check_targets(self.where, self.target_modules)
        for name, patterns in (("rank_pattern", self.rank_pattern), ("alpha_pattern", self.alpha_pattern)):
            for key in patterns:  # PEFT runs each key as a regex over every module name
                try:
                    target_modules.parse(key)
                except target_modules.PatternError as exc:
                    raise InvalidAdapterError(f"{self.where}: {name} key {key[:80]!r} is refused: {exc}.") from None

    def rank_for(self, module: str) -> int:
        """The rank PEFT gives `module` (a name with or without the `base_model.model.` prefix)."""
        return self.rank_pattern.get(_pattern_key(self.rank_pattern, module), self.r)

    def alpha_for(self, module: str) -> float:
        return self.alpha_pattern.get(_pattern_key(self.alpha_pattern, module), self.lora_alpha)

    def scaling(self, module: str, rank: int | None = None) -> float:
        """PEFT's LoRA scale for `module`: alpha / r, or alpha / sqrt(r) with rsLoRA."""
        r = rank if rank is not None else self.rank_for(module)
        alpha = self.alpha_for(module)
        return alpha / math.sqrt(r) if self.use_rslora else alpha / r

    def targets(self, module: str) -> bool:
        """PEFT's rule: a regex string must match the whole name, a list entry must end it at a dot."""
        if isinstance(self.target_modules, str):
            return target_modules.matches(self.target_modules, module)
        return any(module == t or module.endswith("." + t) for t in self.target_modules)

    @property
    def causal_lm(self) -> bool:
        """True for a text-generation adapter (task_type CAUSAL_LM): it carries no classification head."""
        return self.task_type == CAUSAL_LM

    @property
    def head_roots(self) -> tuple[str, ...]:
        """Top-level modules whose full weights the adapter carries: modules_to_save, plus PEFT's heads for SEQ_CLS."""
        heads = () if self.causal_lm else DEFAULT_HEADS
        return tuple(dict.fromkeys((*heads, *self.modules_to_save)))

    def is_head_tensor(self, name: str) -> bool:
        """Whether tensor `name` (prefix stripped) belongs to a saved head module.

        PEFT matches modules_to_save by suffix: "classifier" also saves DistilBERT's pre_classifier.
        """
        return name.split(".")[0].endswith(self.head_roots) and name.endswith((".weight", ".bias"))

    def layout(self, keys: Iterable[str], where: str) -> TensorLayout:
        """Sort a weights file's tensor names into LoRA pairs and head tensors, as the server applies them.

        Refuses a tensor that is neither, a LoRA half without its other half, and a
        classification adapter with no head: what registers here is what serving can load.
        A CAUSAL_LM adapter needs no head (`final` is then None).
        """
        lora: dict[str, dict[str, str]] = {}
        head: dict[str, str] = {}
        for key in keys:
            name = key.removeprefix(PEFT_PREFIX)
            match = LORA_KEY.match(name)
            if match:
                lora.setdefault(match["module"], {})[match["ab"]] = key
            elif self.is_head_tensor(name):
                head[name] = key
            else:
                raise InvalidAdapterError(
                    f"{where} holds tensor {key!r} the server cannot apply; only LoRA pairs (lora_A/lora_B) and "
                    f"the modules_to_save {list(self.head_roots)} are served. Re-save the adapter without it."
                )
        for module, halves in lora.items():
            if set(halves) != {"A", "B"}:
                missing = "lora_B" if "A" in halves else "lora_A"
                raise InvalidAdapterError(
                    f"{where}: module {module} has no {missing} weight; re-save the adapter with save_pretrained()."
                )
        final = final_linear(head)
        if final is None and not self.causal_lm:
            raise InvalidAdapterError(
                f"{where} has no classification head (classifier.weight); train it with "
                "task_type SEQ_CLS so the head is saved."
            )
        return TensorLayout(lora, head, final)

    def record(self) -> dict[str, Any]:
        """The fields a version row keeps (`peft_config`), as they were in the file."""
        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        return {
            "r": self.r,
            "alpha": self.raw.get("lora_alpha"),
            "dropout": self.lora_dropout,
            "target_modules": targets,
            "modules_to_save": self.raw.get("modules_to_save"),
            "task_type": self.task_type,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str) -> AdapterConfig:
        """Type-check the JSON object `data` (quoting any bad value) and build the config."""
        r = data.get("r")
        if not _is_int(r) or r < 1:
            raise InvalidAdapterError(
                f"{where}: r must be a positive integer, got {r!r}; re-save the adapter with save_pretrained()."
            )
        targets = data.get("target_modules")
        if not targets:
            raise InvalidAdapterError(
                f"{where}: target_modules is missing or empty; name the layers LoRA was "
                'trained on, e.g. ["query", "value"].'
            )
        alpha = data.get("lora_alpha", DEFAULT_ALPHA)
        if not _is_number(alpha):
            raise InvalidAdapterError(f"{where}: lora_alpha must be a number, got {alpha!r}.")
        dropout = data.get("lora_dropout")
        if dropout is not None and not _is_number(dropout):
            raise InvalidAdapterError(f"{where}: lora_dropout must be a number, got {dropout!r}.")
        return cls(
            where=where,
            r=r,
            target_modules=tuple(targets) if isinstance(targets, list) else targets,
            peft_type=data.get("peft_type"),  # type: ignore[arg-type]  # __post_init__ refuses all but "LORA"
            task_type=_optional_str(data, "task_type", where),
            lora_alpha=alpha,
            lora_dropout=dropout,
            rank_pattern=_patterns(data, "rank_pattern", where, positive_int=True),
            alpha_pattern=_patterns(data, "alpha_pattern", where, positive_int=False),
            modules_to_save=_names(data, "modules_to_save", where),
            base_model_name_or_path=_optional_str(data, "base_model_name_or_path", where),
            revision=_optional_str(data, "revision", where),
            raw=dict(data),
            **{flag: _flag(data, flag, where) for flag in ("use_rslora", *UNSERVED_FEATURES)},
        )


@dataclass(frozen=True)
class TensorLayout:
    """Where each tensor of a weights file goes: `lora` maps a module to its {"A": key, "B": key},
    `head` a head tensor's name (prefix stripped) to its key, `final` names the head's last Linear
    (None for a CAUSAL_LM adapter, which has no classification head)."""

    lora: dict[str, dict[str, str]]
    head: dict[str, str]
    final: str | None


def final_linear(head_names: Iterable[str]) -> str | None:
    """The head's last Linear among tensor names such as `classifier.out_proj.weight`, or None."""
    names = set(head_names)
    return next((m for m in FINAL_LINEAR if f"{m}.weight" in names), None)


def read_adapter_config(folder: Path, where: str | None = None) -> AdapterConfig:
    """The validated `adapter_config.json` of `folder`; InvalidAdapterError names what to fix.

    `where` replaces the file's path in messages (the server passes a version's ref,
    so no path on this machine reaches an API client).
    """
    path = Path(folder) / CONFIG
    label = where or str(path)
    if not is_regular(path):
        raise InvalidAdapterError(
            f"No {CONFIG} in {where or folder}: point at a folder written by PEFT's save_pretrained()."
        )
    data = _read_json(path, label)
    if not isinstance(data, dict):
        raise InvalidAdapterError(
            f"{label} must hold a JSON object, got {type(data).__name__}; re-save the adapter with save_pretrained()."
        )
    return AdapterConfig.from_dict(data, label)


def _read_json(path: Path, label: str) -> Any:
    """The file's JSON, read without following a link, size-capped; the one place its parse errors are caught."""
    with open_regular(path) as fh:
        data = fh.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise InvalidAdapterError(f"{label} is over the {MAX_JSON_BYTES}-byte limit for a PEFT config file.")
    try:
        return json_files.loads(data.decode("utf-8"))
    except ValueError as exc:  # UnicodeDecodeError is a ValueError; json_files turns deep nesting into one
        reason = str(exc)[:200]
        raise InvalidAdapterError(
            f"{label} is not valid JSON ({reason}); re-save the adapter with save_pretrained()."
        ) from None


def _pattern_key(patterns: Mapping[str, Any], module: str) -> str:
    """PEFT's `get_pattern_key`: the first key that matches the end of `module` at a dot boundary."""
    for key in patterns:
        if re.match(rf"(.*\.)?({key})$", module):
            return key
    return module


def _check_targets(where: str, targets: Any) -> None:
    """target_modules is a regex string (bounded: see target_modules.py) or module names."""
    if isinstance(targets, str):
        try:
            target_modules.parse(targets)
        except target_modules.PatternError as exc:
            raise InvalidAdapterError(f"{where}: target_modules {targets[:80]!r} is refused: {exc}.") from None
    elif not isinstance(targets, tuple) or not targets or not all(isinstance(t, str) and t for t in targets):
        shown = list(targets) if isinstance(targets, tuple) else targets
        raise InvalidAdapterError(f"{where}: target_modules must be a regex or a list of module names, got {shown!r}.")


def _patterns(data: Mapping[str, Any], name: str, where: str, *, positive_int: bool) -> dict[str, Any]:
    value = data.get(name)
    if value is None:
        return {}

    def ok(v: Any) -> bool:
        return _is_int(v) and v >= 1 if positive_int else _is_number(v)

    if not isinstance(value, dict) or not all(ok(v) for v in value.values()):
        what = "positive ranks" if positive_int else "alpha values (numbers)"
        raise InvalidAdapterError(f"{where}: {name} must map module names to {what}, got {value!r}.")
    return dict(value)


def _names(data: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    value = data.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidAdapterError(f"{where}: {name} must be a list of module names, got {value!r}.")
    return tuple(value)


def _optional_str(data: Mapping[str, Any], name: str, where: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidAdapterError(f"{where}: {name} must be a string, got {value!r}; fix it or remove it.")
    return value


def _flag(data: Mapping[str, Any], name: str, where: str) -> bool:
    value = data.get(name, False)
    if value in (None, False):
        return False
    if value is True:
        return True
    if name in UNSERVED_FEATURES:  # any other setting still asks for the feature
        raise InvalidAdapterError(_UNSERVED.format(where=where, flag=name, value=value))
    raise InvalidAdapterError(f"{where}: {name} must be true or false, got {value!r}.")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

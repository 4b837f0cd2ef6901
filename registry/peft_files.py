"""Checks a PEFT `save_pretrained` folder before any byte of it is stored.

Reads safetensors directly (header + numpy views) so the registry stays free
of torch and a malformed file yields a precise message instead of a crash.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import target_modules
from .adapter_config import MAX_JSON_BYTES, PEFT_PREFIX, AdapterConfig, final_linear, read_adapter_config
from .domains import GENERATION, PEFT_TASK_TYPES, task_of_peft_type
from .errors import InvalidAdapterError, TaskMismatchError
from .json_files import loads as json_loads
from .regular_files import is_regular, open_regular

if TYPE_CHECKING:
    import numpy as np

WEIGHTS = "adapter_model.safetensors"
LABEL_CONFIG = "config.json"  # optional: the base config with id2label, which AutoConfig.from_pretrained reads
PICKLED = ("adapter_model.bin", "pytorch_model.bin", "adapter_model.pt")
_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "BF16": "<u2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}
_FLOATS = {"F64", "F32", "F16", "BF16"}
_MAX_HEADER = 100 * 1024 * 1024
# A LoRA adapter is a few MB. Register and pull (adapters/hub/transport.py) share this cap (and
# adapter_config.MAX_JSON_BYTES), checked against the file's size before it is read.
MAX_WEIGHTS_BYTES = 1 << 30


@dataclass(frozen=True)
class AdapterSummary:
    """What validation learned about a PEFT folder."""

    config: AdapterConfig
    num_labels: int | None
    lora_modules: int
    parameters: int


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file as float32/int numpy arrays (bf16 widened).

    The size, the header length and every tensor's offsets are checked against the
    file before any tensor byte is read; tensors are then read one by one.
    """
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_WEIGHTS_BYTES:
            raise InvalidAdapterError(
                f"{path} is {size} bytes, over the {MAX_WEIGHTS_BYTES}-byte limit for an "
                "adapter; a LoRA adapter is a few MB. Is this a full model?"
            )
        if size < 8:
            raise InvalidAdapterError(f"{path} is not a safetensors file (only {size} bytes).")
        (header_len,) = struct.unpack("<Q", fh.read(8))
        if header_len > min(_MAX_HEADER, size - 8):
            raise InvalidAdapterError(f"{path} is not a safetensors file (header length {header_len}).")
        try:
            header = json_loads(fh.read(header_len))
        except (ValueError, RecursionError):
            raise InvalidAdapterError(f"{path} has a malformed safetensors header.") from None
        if not isinstance(header, dict):
            raise InvalidAdapterError(f"{path}: the safetensors header is a {type(header).__name__}, not an object.")
        entries = _tensor_entries(path, header, size - 8 - header_len)
        _check_with_library(path)
        return {name: _read_tensor(path, fh, 8 + header_len, entry) for name, entry in entries.items()}


_Entry = tuple[str, list[int], int, int]  # dtype name, shape, start, end (relative to the data section)


def _tensor_entries(path: Path, header: dict[str, Any], body_len: int) -> dict[str, _Entry]:
    """Every tensor's entry, its dtype known and its bytes inside the file and of the size dtype x shape says."""
    import numpy as np  # imported here: listing the registry must not pay for numpy

    entries: dict[str, _Entry] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
            itemsize = np.dtype(_DTYPES[dtype_name]).itemsize
        except (KeyError, TypeError, ValueError):
            raise InvalidAdapterError(f"{path}: tensor {name!r} has an unreadable header entry {info!r}.") from None
        numbers = [*shape, start, end] if isinstance(shape, list) else None
        if numbers is None or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in numbers):
            raise InvalidAdapterError(f"{path}: tensor {name!r} has an unreadable header entry {info!r}.")
        if not start <= end <= body_len or end - start != math.prod(shape) * itemsize:
            raise InvalidAdapterError(f"{path}: tensor {name!r} points outside the file (truncated?).")
        entries[name] = (dtype_name, shape, start, end)
    return entries


def _read_tensor(path: Path, fh: Any, offset: int, entry: _Entry) -> np.ndarray:
    import numpy as np

    dtype_name, shape, start, end = entry
    fh.seek(offset + start)
    data = fh.read(end - start)
    if len(data) != end - start:  # the file shrank after its size was checked
        raise InvalidAdapterError(f"{path} changed while it was read; register it again once it is written.")
    array = np.frombuffer(data, dtype=_DTYPES[dtype_name]).reshape(shape)
    if dtype_name == "BF16":
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array


def _check_with_library(path: Path) -> None:
    """Refuse what `safetensors` itself would refuse to load (overlapping offsets,
    non-string metadata, bad shapes), so a stored version can always be loaded."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy"):
            pass
    except (SafetensorError, OSError, ValueError) as exc:
        reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise InvalidAdapterError(
            f"{path} is not a valid safetensors file ({reason}); re-save the adapter with save_pretrained()."
        ) from None


def _head_labels(tensors: dict[str, np.ndarray]) -> int | None:
    """Outputs of the head's last Linear (adapter_config.FINAL_LINEAR, the rule serving uses)."""
    names = {k.removeprefix(PEFT_PREFIX): k for k in tensors if "lora_" not in k}
    final = final_linear(names)
    return int(tensors[names[f"{final}.weight"]].shape[0]) if final else None


def _check_label_config(path: Path, num_labels: int | None) -> None:
    """An optional config.json must be a JSON object whose id2label (if any) has one name per label."""
    if not is_regular(path):
        return
    try:
        config = json_loads(_read_text(path))
    except (ValueError, UnicodeDecodeError, RecursionError):
        config = None
    if not isinstance(config, dict):
        raise InvalidAdapterError(
            f"{path} is not a JSON object; remove it or re-save it with config.save_pretrained()."
        )
    id2label = config.get("id2label")
    if id2label is None:
        return
    if not isinstance(id2label, dict) or not all(isinstance(k, str) and k.isdigit() for k in id2label):
        raise InvalidAdapterError(f"{path}: id2label {str(id2label)[:80]!r} is not a map of label ids to names.")
    if num_labels is not None and len(id2label) != num_labels:
        raise InvalidAdapterError(
            f"{path} names {len(id2label)} labels but the domain has {num_labels}; "
            "register it under a domain with matching labels, or remove config.json."
        )


def _read_text(path: Path) -> str:
    """A small JSON file's text, read without following a link and refused over MAX_JSON_BYTES."""
    with open_regular(path) as fh:
        data = fh.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise InvalidAdapterError(f"{path} is over the {MAX_JSON_BYTES}-byte limit for a PEFT config file.")
    return data.decode("utf-8")


def _check_pair(weights: Path, config: AdapterConfig, key: str, a: np.ndarray, b: np.ndarray | None) -> None:
    """One module's lora_A/lora_B: both there, on a targeted module, matrices of the rank the config gives it."""
    module = key.split(".lora_A.")[0]
    if b is None:
        raise InvalidAdapterError(f"{weights}: {key} has no matching lora_B weight.")
    if not config.targets(module):
        shown = config.target_modules if isinstance(config.target_modules, str) else list(config.target_modules)
        raise InvalidAdapterError(
            f"{weights}: LoRA weights on {module!r}, which target_modules {shown!r} does not name."
        )
    if a.ndim < 2 or b.ndim < 2:
        raise InvalidAdapterError(
            f"{weights}: {key} has shape {list(a.shape)} and its lora_B {list(b.shape)}; LoRA weights are matrices."
        )
    expected = config.rank_for(module.removeprefix(PEFT_PREFIX))
    if a.shape[0] != expected or b.shape[-1] != expected:
        raise InvalidAdapterError(
            f"{weights}: {module} has rank {a.shape[0]}x{b.shape[-1]} but adapter_config.json says r={expected}."
        )


def check_task(config: AdapterConfig, task: str, where: str) -> None:
    """Refuse an adapter whose PEFT task_type is not the one `task` trains (TaskMismatchError names both).

    A classification domain refuses only another task's adapter (CAUSAL_LM): a config with no
    task_type (hand-written) or another PEFT one registers as before (its head is checked anyway,
    and merge/export refuse what they cannot handle). A generation domain needs CAUSAL_LM, the only
    thing that says "no head, causal LM".
    """
    expected = PEFT_TASK_TYPES[task]
    found = task_of_peft_type(config.task_type)
    if config.task_type == expected or (task != GENERATION and found in (None, task)):
        return
    trained = f"a {found} adapter" if found else "an adapter of no task loradock knows"
    elsewhere = f"Register it under a {found} domain (adapters domains add NAME --task {found}), or r" if found else "R"
    raise TaskMismatchError(
        f"{where}: adapter_config.json says task_type {config.task_type!r} ({trained}), but the domain's task "
        f"is {task!r}, which takes task_type {expected!r}. {elsewhere}etrain it with task_type={expected}."
    )


def validate_folder(folder: Path, num_labels: int | None = None, task: str | None = None) -> AdapterSummary:
    """Raise InvalidAdapterError unless `folder` is a loadable, finite LoRA adapter (of `task`, when given)."""
    import numpy as np

    if not folder.is_dir():
        raise InvalidAdapterError(f"{folder} is not a folder: pass the directory PEFT's save_pretrained() wrote.")
    for name in PICKLED:
        if os.path.lexists(folder / name) and not os.path.lexists(folder / WEIGHTS):
            raise InvalidAdapterError(
                f"{folder / name} holds pickled weights, which can run code when loaded. "
                "Re-save with safetensors: model.save_pretrained(path, safe_serialization=True)."
            )
    config = read_adapter_config(folder)
    if task is not None:
        check_task(config, task, str(folder))
    weights = folder / WEIGHTS
    if not is_regular(weights):
        raise InvalidAdapterError(f"No {WEIGHTS} in {folder}: re-save the adapter with safe_serialization=True.")
    tensors = read_safetensors(weights)
    lora_a = {k: v for k, v in tensors.items() if ".lora_A." in k}
    if not lora_a:
        raise InvalidAdapterError(f"{weights} holds no lora_A weights; is this a LoRA adapter?")
    targets = config.target_modules
    modules = [key.split(".lora_A.")[0] for key in lora_a]
    try:  # names and pattern bounded before the first match (target_modules.py says why)
        target_modules.check_lengths(modules)
    except target_modules.PatternError as exc:
        raise InvalidAdapterError(f"{weights}: {exc}.") from None
    if isinstance(targets, str):
        try:
            target_modules.check_cost(target_modules.parse(targets), modules)
        except target_modules.PatternError as exc:
            raise InvalidAdapterError(f"{weights}: target_modules {targets[:80]!r} is refused: {exc}.") from None
    for key, a in lora_a.items():
        _check_pair(weights, config, key, a, tensors.get(key.replace(".lora_A.", ".lora_B.")))
    for key, array in tensors.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InvalidAdapterError(
                f"{weights}: tensor {key!r} holds NaN or Inf values; the adapter diverged in training."
            )
    config.layout(tensors, str(weights))  # every tensor is one the server applies
    head = _head_labels(tensors)
    if num_labels is not None and head is not None and head != num_labels:
        raise InvalidAdapterError(
            f"{weights}: the classifier head has {head} outputs but the domain has {num_labels} labels; "
            "register it under a domain with matching labels."
        )
    _check_label_config(folder / LABEL_CONFIG, num_labels)
    return AdapterSummary(
        config=config,
        num_labels=head,
        lora_modules=len(lora_a),
        parameters=int(sum(v.size for v in tensors.values())),
    )

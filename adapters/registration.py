"""What a registered version records about its base, read from a PEFT folder,
and the check that its LoRA weights fit that base's layers."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from loradock.registry import DEFAULT_BASE, InvalidAdapterError
from loradock.registry.adapter_config import read_adapter_config

from loradock.adapters.base import embedded_path, weight_files, fingerprint, resolve_base
from loradock.adapters.errors import BaseModelError

log = logging.getLogger(__name__)

# A Hub model id (`name` or `owner/name`): what a base named by someone else may be.
# A path ("/etc", "../x", "~/m") is only ever accepted from the local user.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
_PEFT_PREFIX = "base_model.model."


def base_metadata_for_folder(folder: Path, fallback: str, explicit: str | None = None) -> dict[str, Any]:
    """Base id, revision and weight fingerprint for the adapter in `folder`.

    An explicit base wins, then the adapter config's `base_model_name_or_path`,
    then the domain's default. LoRA shapes that do not fit that base are refused.
    """
    config = read_adapter_config(folder)  # the message validation gives for a missing or broken config
    name = explicit or config.base_model_name_or_path or fallback
    revision = config.revision if not explicit else None
    base = resolve_base(name, revision)
    check_fits_base(folder, base, name)
    return {"base_model": name, "base_revision": revision, "base_fingerprint": fingerprint(base)}


def is_hub_id(name: object) -> bool:
    """Whether `name` reads as a Hub model id rather than a local path."""
    return isinstance(name, str) and _HUB_ID.fullmatch(name) is not None and ".." not in name


def local_base(name: str, revision: str | None = None) -> Path | None:
    """The base's folder when it is on this machine already (embedded, or in the Hub cache), else None.

    Never reaches the network and never reads `name` as a path: it comes from a remote record.
    """
    if not is_hub_id(name):
        return None
    if name == DEFAULT_BASE and revision is None:
        embedded = embedded_path()
        if embedded is not None:
            return embedded
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, revision=revision, local_files_only=True,
                                      allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"]))
    except Exception:  # not cached here (or a broken cache): the version stays unverified
        return None


def local_fingerprint(name: str, revision: str | None = None) -> tuple[Path, str] | None:
    """(folder, fingerprint) of the base when it is on this machine, else None."""
    folder = local_base(name, revision)
    if folder is None:
        return None
    try:
        return folder, fingerprint(folder)
    except BaseModelError:
        return None


def _shapes(path: Path) -> dict[str, list[int]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as fh:
        return {key: list(fh.get_slice(key).get_shape()) for key in fh.keys()}


def check_fits_base(folder: Path, base: Path, name: str = "") -> None:
    """Refuse LoRA weights whose shapes do not fit the base's layers (e.g. hidden 8 on a 384-wide base).

    Only checks what can be read without torch: safetensors headers of the
    adapter and the base. A base stored as pickled .bin is not checked here.
    """
    weights = folder / "adapter_model.safetensors"
    base_files = [p for p in weight_files(base) if p.suffix == ".safetensors"]
    if not weights.is_file() or not base_files:
        return
    try:
        adapter = _shapes(weights)
    except Exception:  # noqa: BLE001 - validation reports a broken file with a better message
        return
    layers: dict[str, list[int]] = {}
    for path in base_files:
        layers.update(_shapes(path))
    checked = 0
    for key, a_shape in sorted(adapter.items()):
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0].removeprefix(_PEFT_PREFIX)
        b_shape = adapter.get(key.replace(".lora_A.", ".lora_B."))
        layer = _find_layer(module, layers)
        if b_shape is None or layer is None or len(layers[layer]) != 2 or len(a_shape) != 2 or len(b_shape) != 2:
            continue
        out_f, in_f = layers[layer]
        # Linear stores (out, in); GPT-2's Conv1D stores (in, out) (PEFT's fan_in_fan_out).
        if (b_shape[0], a_shape[1]) not in ((out_f, in_f), (in_f, out_f)):
            raise InvalidAdapterError(
                f"{weights}: the LoRA weights on {module} map {a_shape[1]} -> {b_shape[0]} features, but layer "
                f"{layer} of base {name or base} maps {in_f} -> {out_f}; this adapter was made for another base. "
                "Register it with --base naming the base it was trained on."
            )
        checked += 1
    log.debug("checked %d LoRA modules of %s against %s", checked, folder, base)


def _find_layer(module: str, layers: dict[str, list[int]]) -> str | None:
    """The base weight a PEFT module name refers to (PEFT adds wrappers such as `bert.` in front)."""
    parts = module.split(".")
    for i in range(len(parts)):
        candidate = ".".join(parts[i:]) + ".weight"
        if candidate in layers:
            return candidate
    return None

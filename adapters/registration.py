"""What a registered version records about its base, read from a PEFT folder,
and the check that its LoRA weights fit that base's layers."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loradock.adapters.base import embedded_path, fingerprint, resolve_base, weight_files
from loradock.adapters.errors import BaseModelError
from loradock.adapters.generation.base import embedded_base
from loradock.registry import DEFAULT_BASE, DEFAULT_GENERATION_BASE, InvalidAdapterError, Registry
from loradock.registry.adapter_config import read_adapter_config

log = logging.getLogger(__name__)

# A Hub model id (`name` or `owner/name`): what a base named by someone else may be.
# A path ("/etc", "../x", "~/m") is only ever accepted from the local user.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
_PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class BaseIdentity:
    """What a version records about its base: a Hub id other machines can fetch, or else a local folder.

    `source` says how the id was found: "hub" (named by its id), "embedded" or
    "registry" (a local folder recognised by its weight fingerprint), or "local"
    (a folder no Hub id is known for: recorded as its absolute path, which
    `adapters push` refuses without --base-id).
    """

    base_model: str
    base_revision: str | None
    base_fingerprint: str
    source: str
    folder: Path

    @property
    def is_local(self) -> bool:
        return self.source == "local"

    def record(self) -> dict[str, Any]:
        """The version fields: base_model, base_revision, base_fingerprint."""
        return {
            "base_model": self.base_model,
            "base_revision": self.base_revision,
            "base_fingerprint": self.base_fingerprint,
        }

    def provenance(self) -> dict[str, Any]:
        """How the base was identified, for the version's provenance."""
        if self.source == "hub":
            return {"base_source": "hub"}
        return {"base_source": self.source, "base_path": os.fspath(self.folder)}


def identify_base(name: str, revision: str | None = None, registry: Registry | None = None) -> BaseIdentity:
    """The one base resolver of train and register: a local folder becomes its Hub id when its weights are known.

    Known are the embedded default and every Hub-id base the registry already
    records (versions by fingerprint, domains by their locally cached base).
    """
    folder = resolve_base(name, revision)
    digest = fingerprint(folder)
    if not Path(name).expanduser().is_dir():
        return BaseIdentity(name, revision, digest, "hub", folder)
    for hub_id, hub_revision, source in _known_bases(registry, digest):
        log.info("base folder %s holds the weights of %s; recording the Hub id", folder, hub_id)
        return BaseIdentity(hub_id, hub_revision, digest, source, folder)
    return BaseIdentity(os.fspath(folder), None, digest, "local", folder)


def _known_bases(registry: Registry | None, digest: str) -> Iterator[tuple[str, str | None, str]]:
    """(Hub id, revision, source) of the bases with fingerprint `digest`, cheapest look first."""
    embedded = embedded_path()
    if embedded is not None and fingerprint(embedded) == digest:
        yield DEFAULT_BASE, None, "embedded"
    causal = embedded_base(build=False)  # the dequantized SmolLM2, when it is cached already
    if causal is not None and fingerprint(causal) == digest:
        yield DEFAULT_GENERATION_BASE, None, "embedded"
    if registry is None:
        return
    for version in registry.versions():
        if version.base_fingerprint == digest and is_hub_id(version.base_model):
            yield str(version.base_model), version.base_revision, "registry"
    for domain in registry.domains():
        found = local_fingerprint(domain.base_model, domain.base_revision) if is_hub_id(domain.base_model) else None
        if found is not None and found[1] == digest:
            yield domain.base_model, domain.base_revision, "registry"


def base_for_folder(
    folder: Path, fallback: str, explicit: str | None = None, registry: Registry | None = None
) -> BaseIdentity:
    """The base of the adapter in `folder`, identified (see identify_base) and checked to fit.

    An explicit base wins, then the adapter config's `base_model_name_or_path`,
    then the domain's default. LoRA shapes that do not fit that base are refused.
    """
    config = read_adapter_config(folder)  # the message validation gives for a missing or broken config
    name = explicit or config.base_model_name_or_path or fallback
    revision = config.revision if not explicit else None
    identity = identify_base(name, revision, registry)
    check_fits_base(folder, identity.folder, name)
    return identity


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
    if name == DEFAULT_GENERATION_BASE and revision is None:
        causal = embedded_base(build=False)
        if causal is not None:
            return causal
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                name,
                revision=revision,
                local_files_only=True,
                allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model"],
            )
        )
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
    except Exception:
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

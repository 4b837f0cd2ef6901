"""What a registered version records about its base, read from a PEFT folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loradock.adapters.base import fingerprint, resolve_base


def base_metadata_for_folder(folder: Path, fallback: str, explicit: str | None = None) -> dict[str, Any]:
    """Base id, revision and weight fingerprint for the adapter in `folder`.

    An explicit base wins, then the adapter config's `base_model_name_or_path`,
    then the domain's default.
    """
    config: dict[str, Any] = {}
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, ValueError):
        pass  # validation reports a missing or broken config with a better message
    name = explicit or config.get("base_model_name_or_path") or fallback
    revision = config.get("revision") if not explicit else None
    return {"base_model": name, "base_revision": revision, "base_fingerprint": fingerprint(resolve_base(name, revision))}

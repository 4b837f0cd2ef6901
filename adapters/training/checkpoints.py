"""Per-epoch checkpoints of a training run, so an interrupted run can be resumed.

A run lives in `$ADAPTERS_HOME/runs/<domain>-<key>/`, where the key hashes
everything that decides the result (data, base, hyperparameters, seed): a
resume with other settings finds no checkpoint instead of mixing two runs.
Each checkpoint is written to a temporary folder and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loradock.adapters.outdir import staged_output

if TYPE_CHECKING:
    import torch

TRAINABLE = "trainable.safetensors"
BEST = "best.safetensors"  # the best epoch so far, registered at the end
OPTIMIZER = "optimizer.pt"
STATE = "state.json"


def run_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_dir(home: Path, domain: str, key: str) -> Path:
    return home / "runs" / f"{domain}-{key}"


@dataclass
class Checkpoint:
    epoch: int  # epochs completed
    state: dict[str, Any]  # history and counters, JSON
    folder: Path


def latest(folder: Path) -> Checkpoint | None:
    """The newest complete checkpoint of a run, if any."""
    if not folder.is_dir():
        return None
    done = sorted(
        (int(p.name.split("-", 1)[1]), p)
        for p in folder.glob("epoch-*")
        if p.name.split("-", 1)[1].isdigit() and (p / STATE).is_file()
    )
    if not done:
        return None
    epoch, path = done[-1]
    return Checkpoint(epoch, json.loads((path / STATE).read_text()), path)


def save(
    folder: Path,
    epoch: int,
    model: torch.nn.Module,
    optim_state: dict[str, Any],
    state: dict[str, Any],
    best: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write epoch `epoch`'s checkpoint (and the best epoch's weights) atomically; drop older ones."""
    import torch
    from safetensors.torch import save_file

    final = folder / f"epoch-{epoch}"
    with staged_output(final, overwrite=True) as tmp:
        trainable = {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}
        save_file(trainable, str(tmp / TRAINABLE))
        if best is not None:
            save_file({n: t.contiguous() for n, t in best.items()}, str(tmp / BEST))
        torch.save(optim_state, tmp / OPTIMIZER)
        (tmp / STATE).write_text(json.dumps(state))
    for old in folder.glob("epoch-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def restore(checkpoint: Checkpoint, model: torch.nn.Module) -> dict[str, Any]:
    """Load the trainable weights into `model`; return the optimizer/scheduler state."""
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(checkpoint.folder / TRAINABLE))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    return torch.load(checkpoint.folder / OPTIMIZER, weights_only=True)


def restore_best(checkpoint: Checkpoint) -> dict[str, torch.Tensor] | None:
    """The best epoch's trainable weights saved with a checkpoint, if any."""
    from safetensors.torch import load_file

    path = checkpoint.folder / BEST
    return load_file(str(path)) if path.is_file() else None


def discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)

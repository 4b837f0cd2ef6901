"""LoRA (or full) fine-tuning of a domain's classifier, evaluated, plotted and registered.

The pipeline: check options and data before any model loads (prepare.py),
build the model (model.py), tokenize once (cached), train on length-grouped
dynamically padded batches with a checkpoint per epoch and eval per epoch
(loop.py, or the Trainer's in hf_loop.py), then register the best epoch's
adapter with its metrics, plots, report and eval split (register.py).
Ctrl-C registers nothing.
"""

from __future__ import annotations

import logging
import time

from loradock.adapters.base import pick_device
from loradock.adapters.training import checkpoints
from loradock.adapters.training.loop import fit
from loradock.adapters.training.model import build_model, param_counts
from loradock.adapters.training.options import TrainOptions
from loradock.adapters.training.prepare import prepare, token_ids
from loradock.adapters.training.register import TrainResult, register
from loradock.registry import Registry

log = logging.getLogger(__name__)


def train(registry: Registry, domain: str, options: TrainOptions | None = None) -> TrainResult:
    """Train `domain` with its preset overridden by `options`; register the result.

    LoRA runs become the domain's next version (``latest`` moves, and
    ``options.alias`` too); ``options.full`` runs become a ``full-model``
    artifact of the domain. Raises before training on bad options or data,
    and TrainingInterrupted (nothing registered) on Ctrl-C.
    """
    options = options or TrainOptions()
    prep = prepare(registry, domain, options)
    device = pick_device(options.device)
    started = time.perf_counter()
    model = build_model(prep, options)
    counts = param_counts(model)
    log.info(
        "training %s on %d examples (%s trainable of %s parameters)",
        domain,
        len(prep.train),
        counts["trainable_params"],
        counts["total_params"],
    )
    report, history = fit(prep, options, model, device, *token_ids(prep))
    result = register(
        registry,
        prep,
        options,
        model,
        report,
        history,
        counts=counts,
        wall_time_s=time.perf_counter() - started,
        device=device,
    )
    checkpoints.discard(prep.run_folder)  # registered: the run is complete
    return result

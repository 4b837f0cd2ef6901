"""The transformers.Trainer loop: same registration contract, best epoch, and TensorBoard logs as an artifact."""

from __future__ import annotations

import pytest

from loradock.adapters.errors import TrainingOptionsError
from loradock.adapters.training.options import TrainOptions
from loradock.adapters.training.train import train
from loradock.registry import Registry
from tests.train_support import gate_passes_fixture, one_thread_fixture, tiny_base_fixture  # noqa: F401  (fixtures)

FAST = {"epochs": 2, "max_length": 32, "batch_size": 16, "progress": False}


@pytest.mark.usefixtures("gate_passes")
@pytest.mark.parametrize("loop", ["trainer", "auto"])
def test_report_to_tensorboard_writes_event_files_tensorboard_reads(
    registry: Registry, tiny_base: str, loop: str
) -> None:
    """--report-to runs the Trainer with --loop trainer, and without --loop (auto) too."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    options = {"loop": loop} if loop != "auto" else {}  # auto: the default, not passed
    result = train(
        registry, "sentiment", TrainOptions(base=tiny_base, report_to=("tensorboard",), patience=0, **FAST, **options)
    )
    v = result.version
    assert v is not None and v.train_args["loop"] == "trainer" and v.metrics["loop"] == "trainer"
    assert [e["epoch"] for e in result.history["epochs"]] == [1, 2]
    assert v.metrics["best_epoch"] in (1, 2) and v.metrics["samples_per_s"] > 0
    logs = registry.find_artifact(v.ref, "logs", "train")
    assert logs is not None
    folder = registry.artifact_path(logs)
    events = sorted(folder.rglob("events.out.tfevents.*"))
    assert events, list(folder.rglob("*"))
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    assert "train/loss" in scalars and "eval/macro_f1" in scalars
    assert len(acc.Scalars("eval/macro_f1")) == 2  # one point per epoch


def test_report_to_needs_the_trainer_loop_and_a_known_name() -> None:
    with pytest.raises(TrainingOptionsError, match="--report-to tensorboard .*--loop own.*--loop trainer"):
        TrainOptions(report_to=("tensorboard",), loop="own")
    assert TrainOptions(report_to=("tensorboard",)).run_loop == "trainer"  # auto, the default
    assert TrainOptions().run_loop == "own" and TrainOptions(loop="trainer").run_loop == "trainer"
    with pytest.raises(TrainingOptionsError, match="Unknown --report-to comet"):
        TrainOptions(report_to=("comet",), loop="trainer")

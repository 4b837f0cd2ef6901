"""`adapters train` and `adapters eval`: thin wrappers over adapters.train and adapters.evaluate."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .render import emit_json, size

json_option = click.option("json_", "--json", is_flag=True, help="Print the result as JSON.")
column_options = [
    click.option("--text-column", default="text", show_default=True, help="Column holding the text."),
    click.option(
        "--label-column", default="label", show_default=True, help="Column holding the label name (or index)."
    ),
]


def _columns(func: Any) -> Any:
    for option in reversed(column_options):
        func = option(func)
    return func


def _passive_threads() -> None:
    """Idle OpenMP threads sleep instead of spinning: on a busy CPU spinning made steps 1.5x slower.

    Must run before torch loads; a user's own OMP_WAIT_POLICY wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _gate_line(result: Any) -> str:
    gate = result.gate
    base = gate.get("baseline") or {}
    floor = f"majority class {base.get('label')!r}: accuracy {base.get('accuracy', 0):.4f}, macro-F1 {base.get('macro_f1', 0):.4f}"
    if gate.get("passed"):
        note = f"; {gate['note']}" if gate.get("note") else ""
        return f"Quality gate: passed ({floor}){note}"
    return f"Quality gate: FAILED - {'; '.join(gate.get('reasons') or [])}"


def _trained_line(extra: dict[str, Any]) -> str:
    return (
        f"trained {extra['trainable_params']:,} of {extra['total_params']:,} parameters "
        f"({extra['trainable_pct']:.3f}%) on {extra['device']} in {extra['wall_time_s']:.1f}s "
        f"({extra['samples_per_s']:.1f} samples/s)"
    )


def _result_json(result: Any, **task_fields: Any) -> dict[str, Any]:
    """`train --json`: the same document for every task, plus `task_fields` (artifact, task)."""
    version = result.version
    return {
        "ref": version.ref if version else None,
        **task_fields,
        "metrics": result.report.to_metrics(),
        "train_args": result.train_args,
        "extra": result.extra,
        "gate": result.gate,
        "failed": result.failed,
        "created_domain": result.created_domain,
        "aliases": list(version.aliases) if version else [],
        "best_epoch": result.history.get("best_epoch"),
        "epochs": result.history.get("epochs"),
    }


def _summary(result: Any, alias: str | None) -> list[str]:
    history = result.history
    lines = [_trained_line(result.extra)]
    ran = len(history.get("epochs") or [])
    lines.append(
        f"best epoch {history.get('best_epoch')} of {ran} run (by eval macro-F1)"
        + (", stopped early" if history.get("stopped_early") else "")
    )
    lines.append(_gate_line(result))
    if result.version is not None:
        v = result.version
        aliases = ", ".join(v.aliases) or "-"
        state = " FAILED its gate; latest and aliases stay on the previous good version" if v.failed else ""
        lines.append(f"Registered {v.ref} ({v.sha256[:12]}, {size(v.size_bytes)}), aliases: {aliases}{state}")
        if alias and v.failed and alias not in v.aliases:
            lines.append(
                f"{v.domain}@{alias} did not move; to move it anyway: adapters alias set {v.domain} {alias} {v.number} --force"
            )
        lines.append(
            f"Plots and report: adapters artifacts {v.ref}  (copy them out: adapters artifacts get {v.ref} plots --out DIR)"
        )
    elif result.artifact is not None:
        a = result.artifact
        lines.append(f"Stored full fine-tuned model as {a.domain}:{a.kind}/{a.name} (not an adapter version)")
    return lines


@click.command(name="train")
@click.argument("domain")
@click.option(
    "--data",
    default=None,
    help="Training data: embedded:DOMAIN, hf:NAME[:CONFIG][@REVISION], or a .csv/.jsonl/.parquet file. Default: the domain's dataset.",
)
@click.option("--split", default="train", show_default=True, help="Split to train on, for hf: data.")
@_columns
@click.option(
    "--prompt-column", default="prompt", show_default=True, help="Generation domains: the CSV column of prompts."
)
@click.option(
    "--completion-column",
    default="completion",
    show_default=True,
    help="Generation domains: the CSV column of completions.",
)
@click.option(
    "--eval-data", default=None, help="Evaluation data (same forms as --data); default: hold out --eval-fraction."
)
@click.option("--eval-split", default="test", show_default=True, help="Split of --eval-data, for hf: data.")
@click.option(
    "--eval-fraction", type=float, default=None, help="Share of --data held out for evaluation [default: 0.2]."
)
@click.option("--base", default=None, help="Base model id or folder (default: the domain's).")
@click.option("--epochs", type=int, default=None, help="Epochs (default: the domain's recipe).")
@click.option("--r", "r", type=int, default=None, help="LoRA rank.")
@click.option("--alpha", type=int, default=None, help="LoRA alpha.")
@click.option("--dropout", type=float, default=None, help="LoRA dropout.")
@click.option("--target-modules", default=None, help="Comma-separated modules to adapt, e.g. query,value.")
@click.option("--lr", type=float, default=None, help="Learning rate (LoRA default: the recipe's; --full: 5e-5).")
@click.option("--batch-size", type=int, default=None, help="Training batch size.")
@click.option(
    "--max-length",
    type=int,
    default=None,
    help="Truncate texts to this many tokens (default: the domain's, else the 95th percentile of the training texts' token counts, up to 256).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for init, split, batch order, dropout.")
@click.option("--alias", default=None, help="Also point this alias (e.g. staging) at the new version.")
@click.option("--description", default="", help="What this version is.")
@click.option(
    "--full",
    is_flag=True,
    help="Full fine-tuning instead of LoRA, for comparison; stored as a full-model artifact, not a version.",
)
@click.option(
    "--resume", is_flag=True, help="Continue an interrupted run (same options) from its last epoch checkpoint."
)
@click.option(
    "--patience",
    type=int,
    default=None,
    help="Stop after this many epochs without a better eval macro-F1; 0 never stops early [default: 2].",
)
@click.option(
    "--min-accuracy",
    type=float,
    default=None,
    help="Gate: fail the version below this eval accuracy (overrides the domain's gate).",
)
@click.option(
    "--min-macro-f1",
    type=float,
    default=None,
    help="Gate: fail the version below this eval macro-F1 (overrides the domain's gate).",
)
@click.option("--force", is_flag=True, help="Move --alias even if the version fails its quality gate.")
@click.option(
    "--loop",
    type=click.Choice(["auto", "own", "trainer"]),
    default="auto",
    show_default=True,
    help="Training loop: loradock's own, or transformers.Trainer (BENCHMARKS.md compares them); "
    "auto runs the own loop, or the Trainer when --report-to is given.",
)
@click.option(
    "--report-to",
    default=None,
    help="Comma-separated tensorboard, mlflow, wandb (if installed), through transformers.Trainer (not with --loop own); the logs are stored as the version's `logs` artifact.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--quiet", is_flag=True, help="No progress bar and no per-epoch lines.")
@json_option
def train_cmd(domain: str, quiet: bool, json_: bool, target_modules: str | None, **kwargs: Any) -> None:
    """Train a LoRA adapter for DOMAIN, evaluate it, and register it as the next version.

    Defaults come from the domain's preset; every option overrides one. A
    DOMAIN that does not exist yet is created with the labels found in --data.
    Every epoch is evaluated; the best one (eval macro-F1) is registered with
    its metrics, plots (loss, accuracy, confusion), report and eval split.

    The version must beat the majority-class baseline of its eval split (and
    the domain's gate, see `adapters domains gate`). If it fails it is still
    registered, marked failed, `latest` and --alias stay where they were, and
    the command exits with status 6.

    Example usage:

    \b
        adapters train sentiment
        adapters train medical --epochs 5 --alias staging
        adapters train legal --data cases.csv --text-column body --label-column area
        adapters train physics --data problems.jsonl

    A text-generation domain (adapters domains add NAME --task generation) trains
    a CAUSAL_LM LoRA on prompt/completion or messages JSONL rows (or a CSV with
    --prompt-column/--completion-column), with the loss on completions only, and
    reports eval loss and perplexity against the base with the adapter disabled.
    """
    _passive_threads()
    from loradock.adapters.errors import QualityGateFailed
    from loradock.adapters.training.evaluate import render
    from loradock.adapters.training.options import TrainOptions
    from loradock.adapters.training.train import train
    from loradock.registry import Registry

    # A bar on a terminal; a piped log gets one line per epoch instead (stderr, so --json stays clean).
    terminal = sys.stderr.isatty()
    options = TrainOptions(
        target_modules=tuple(target_modules.split(",")) if target_modules else None,
        progress=not quiet and not json_ and terminal,
        on_epoch=None if quiet or terminal else (lambda line: click.echo(line, err=True)),
        **kwargs,
    )
    registry = Registry()
    if _is_generation(registry, domain):
        _train_generation(registry, domain, options, json_)
        return
    result = train(registry, domain, options)
    if result.created_domain:
        click.echo(
            f"New domain {domain!r} with labels from the data: {', '.join(result.version.labels if result.version else [])}",
            err=json_,
        )
    if json_:
        emit_json(_result_json(result, artifact=result.artifact.to_dict() if result.artifact else None))
    else:
        click.echo(render(result.report))
        click.echo()
        for line in _summary(result, kwargs.get("alias")):
            click.echo(line)
    if result.failed:
        ref = result.version.ref if result.version else domain
        raise QualityGateFailed(
            f"{ref} failed its quality gate: {'; '.join(result.gate.get('reasons') or [])}. "
            f"See why: adapters artifacts get {ref} plots --out DIR"
        )


def _is_generation(registry: Any, domain: str) -> bool:
    """Whether DOMAIN is a text-generation domain (an unknown one goes the classification way: labels from --data)."""
    from loradock.registry.errors import UnknownDomainError

    try:
        return bool(registry.domain(domain).generation)
    except UnknownDomainError:
        return False


def _train_generation(registry: Any, domain: str, options: Any, json_: bool) -> None:
    """`adapters train` for a text-generation domain: the same options, a loss-based summary."""
    from loradock.adapters.generation.train import train as train_generation

    result = train_generation(registry, domain, options)
    v = result.version
    if json_:
        emit_json(_result_json(result, task=v.task))
        return
    click.echo(result.report.render())
    click.echo()
    click.echo(_trained_line(result.extra))
    click.echo(
        f"best epoch {result.history.get('best_epoch')} of {len(result.history.get('epochs') or [])} run (by eval loss)"
    )
    click.echo(
        f"Registered {v.ref} ({v.task}, {v.sha256[:12]}, {size(v.size_bytes)}), aliases: {', '.join(v.aliases) or '-'}"
    )
    click.echo(f"Plots and report: adapters artifacts {v.ref}")


@click.command(name="eval")
@click.argument("ref")
@click.option(
    "--data",
    required=True,
    help="Labelled data: embedded:DOMAIN, hf:NAME[:CONFIG][@REVISION], or a .csv/.jsonl/.parquet file.",
)
@click.option("--split", default="test", show_default=True, help="Split, for hf: data.")
@_columns
@click.option("--max-length", type=int, default=None, help="Truncation length (default: the one used in training).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@json_option
def eval_cmd(
    ref: str,
    data: str,
    split: str,
    text_column: str,
    label_column: str,
    max_length: int | None,
    device: str,
    json_: bool,
) -> None:
    """Evaluate a registered version on labelled data and print the report.

    Example usage:

        adapters eval medical@production --data held_out.jsonl
    """
    _passive_threads()
    from loradock.adapters.training.evaluate import evaluate_version, render
    from loradock.registry import Registry

    report = evaluate_version(
        Registry(),
        ref,
        data,
        text_column=text_column,
        label_column=label_column,
        split=split,
        device=device,
        max_length=max_length,
    )
    if json_:
        emit_json(report.to_dict())
        return
    click.echo(f"{ref} on {report.source}")
    click.echo(render(report))


COMMANDS = [train_cmd, eval_cmd]

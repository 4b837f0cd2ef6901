"""Commands that turn a version into a deployment: merge, export, and predict to compare them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .completion import complete_ref
from .registry_cmds import json_option, open_registry, write_json_option
from .render import emit_json, size, table

# adapters.predict.BACKENDS, spelled here so `adapters list` never imports numpy (start-up time).
PREDICT_BACKENDS = ("auto", "onnx", "torch")

out_option = click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write; it must not exist unless --overwrite.",
)
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
tolerance_option = click.option(
    "--tolerance",
    type=float,
    default=1e-4,
    show_default=True,
    help="Largest max abs logit difference allowed against the adapter.",
)


def _quiet() -> None:
    # Loading-progress bars from transformers drown the one line these commands print.
    # (Only on the torch paths: importing transformers costs seconds.)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _checked(report: dict, reused: bool) -> str:
    diff = report.get("max_abs_diff")
    parts = [f"max abs logit diff {diff:.2g}" if isinstance(diff, float) else None]
    gate = report.get("gate") or {}
    if gate.get("applied"):
        verdict = f"{gate['verdict']} by {gate['statistic']}" if "verdict" in gate else "within the limit"
        parts.append(
            f"accuracy {gate['accuracy_export']:.2f}% vs adapter {gate['accuracy_adapter']:.2f}% on "
            f"{gate.get('eval_size', '?')} texts (drop {gate['accuracy_drop']:.2f}, limit "
            f"{gate['max_accuracy_drop']:g}: {verdict})"
        )
    elif gate:
        parts.append("accuracy gate skipped: no eval data")
    parts.append(f"size {size(report.get('sizes', {}).get('total'))}")
    if reused:
        parts.append("reused from the registry")
    return "; ".join(p for p in parts if p)


def _result_json(result: Any) -> dict[str, Any]:
    """A merge or export result for --json: where it went, its artifact and its checks."""
    return {
        "ref": result.ref,
        "out": str(Path(result.out).absolute()),
        "reused": result.reused,
        "artifact": f"{result.artifact.kind}/{result.artifact.name}",
        "report": result.report,
    }


@click.command(name="merge")
@click.argument("ref")
@out_option
@tolerance_option
@overwrite_option
@write_json_option
def merge_cmd(ref: str, out: Path, tolerance: float, overwrite: bool, json_: bool) -> None:
    """Merge DOMAIN@REF into its base and write a plain transformers model folder.

    The merged model is checked against the adapter on probe texts and
    registered as an artifact of the version (see 'adapters show').

    Example usage:

        adapters merge sentiment@production --out ./sentiment-merged
    """
    from loradock.adapters.export.merge import merge_version

    _quiet()
    result = merge_version(open_registry(), ref, out, tolerance=tolerance, overwrite=overwrite)
    if json_:
        emit_json(_result_json(result))
        return
    click.echo(f"Merged {result.ref} into {result.out} ({_checked(result.report, result.reused)})")


@click.command(name="export")
@click.argument("ref")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "onnx-multi"]),
    default="onnx",
    show_default=True,
    help="Export format; onnx-multi: one graph for several domains (REF is D1,D2,...), "
    "run with onnxruntime and numpy (an edge bundle).",
)
@click.option("--quantize", type=click.Choice(["int8"]), default=None, help="Quantize weights (dynamic int8).")
@click.option("--opset", type=int, default=None, help="ONNX opset (default 17).")
@click.option(
    "--max-accuracy-drop",
    type=float,
    default=1.0,
    show_default=True,
    help="Points of accuracy the export may lose against the fp32 adapter on the version's eval data; "
    "a larger loss is refused only when a paired test says it is more than noise.",
)
@tolerance_option
@out_option
@overwrite_option
@write_json_option
def export_cmd(
    ref: str,
    fmt: str,
    quantize: str | None,
    opset: int | None,
    max_accuracy_drop: float,
    tolerance: float,
    out: Path,
    overwrite: bool,
    json_: bool,
) -> None:
    """Export DOMAIN@REF to ONNX (optionally int8) with tokenizer and label map beside it.

    The export is checked against the adapter with onnxruntime and registered
    as an artifact of the version; asking again with the same options reuses it.

    Example usage:

        adapters export sentiment@production --format onnx --quantize int8 --out ./sentiment-onnx
    """
    from loradock.adapters.export.onnx_export import export_onnx

    _quiet()
    if fmt == "onnx-multi":
        _export_bundle(ref, quantize, out, overwrite, json_)
        return
    result = export_onnx(
        open_registry(),
        ref,
        out,
        quantize=quantize,
        opset=opset,
        max_accuracy_drop=max_accuracy_drop,
        overwrite=overwrite,
        tolerance=tolerance,
        fmt=fmt,
    )
    if json_:
        emit_json(_result_json(result))
        return
    click.echo(
        f"Exported {result.ref} as {result.artifact.name} to {result.out} ({_checked(result.report, result.reused)})"
    )


def _export_bundle(refs: str, quantize: str | None, out: Path, overwrite: bool, json_: bool) -> None:
    from loradock.adapters.export.bundle import export_bundle

    result = export_bundle(
        open_registry(), [r.strip() for r in refs.split(",") if r.strip()], out, quantize=quantize, overwrite=overwrite
    )
    if json_:
        emit_json({"refs": result.refs, "out": str(Path(result.out).absolute()), "bundle": result.meta})
        return
    click.echo(f"Exported {', '.join(result.refs)} as one onnx-multi bundle to {result.out}")


@click.command(name="predict")
@click.argument("args", nargs=-1, metavar="[DOMAIN@REF] [TEXT|-]...", shell_complete=complete_ref)
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read texts from a file: one per line, or a CSV's --column.",
)
@click.option("--column", default=None, help="CSV column holding the texts [default: text].")
@click.option(
    "--onnx",
    "onnx_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Run an exported ONNX folder through onnxruntime instead of a registered version.",
)
@click.option(
    "--backend",
    type=click.Choice(PREDICT_BACKENDS),
    default="auto",
    show_default=True,
    help="auto: the version's ONNX export when it has one (no torch import, quick), else PEFT on torch.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Texts per model call.")
@json_option
def predict_cmd(
    args: tuple[str, ...],
    file_: Path | None,
    column: str | None,
    onnx_dir: Path | None,
    backend: str,
    batch_size: int,
    json_: bool,
) -> None:
    """Predict labels for texts with DOMAIN@REF (or an ONNX folder), in batches.

    Texts come from the arguments, from stdin ('-', one per line) or from
    --file. With --backend auto a version that has an ONNX export runs through
    onnxruntime (seconds faster to start); the path taken is printed on stderr.

    \b
    Example usage:
        adapters predict sentiment@production "What a great film"
        cat reviews.txt | adapters predict sentiment@production - --json
        adapters predict sentiment@production --file reviews.csv --column body
        adapters predict --onnx ./sentiment-onnx "What a great film"
    """
    from loradock.adapters.predict import (
        MAX_CHARS,
        over_budget,
        predict_onnx,
        predict_version,
        read_texts,
    )

    ref, texts = (None, list(args)) if onnx_dir is not None else (args[0] if args else None, list(args[1:]))
    if onnx_dir is None and ref is None:
        raise click.UsageError("Give a version: adapters predict DOMAIN@REF TEXT... (or --onnx DIR TEXT...)")
    texts = [line for t in texts for line in (_stdin_lines() if t == "-" else [t])]
    if file_ is not None:
        texts += read_texts(file_, column)
    if not texts:
        raise click.UsageError(
            "Give at least one text: adapters predict DOMAIN@REF TEXT... ('-' reads stdin, --file reads a file)"
        )
    cut = over_budget(texts)
    if cut:
        click.echo(
            f"{cut} text(s) longer than {MAX_CHARS} characters: only their first {MAX_CHARS} are "
            "used (the server refuses them; split them to classify every part).",
            err=True,
        )
    if onnx_dir is not None:
        predictions, how = predict_onnx(onnx_dir, texts), f"onnxruntime on {onnx_dir}"
    elif ref is not None:  # always, after the UsageError above; said again for the type checker
        run = predict_version(open_registry(), ref, texts, backend=backend, batch_size=batch_size, before_torch=_quiet)
        predictions, how = run.predictions, f"{run.backend} ({run.source} of {run.ref})"
    click.echo(f"predicted {len(predictions)} with {how}", err=True)
    if json_:
        emit_json([p.to_dict() for p in predictions])
        return
    table([(p.label, f"{p.score:.4f}", p.text[:60]) for p in predictions], ["label", "score", "text"])


def _stdin_lines() -> list[str]:
    from loradock.adapters.predict import read_lines

    return read_lines(sys.stdin)


COMMANDS = [merge_cmd, export_cmd, predict_cmd]

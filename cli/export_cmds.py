"""Commands that turn a version into a deployment: merge, export, and predict to compare them."""

from __future__ import annotations

from pathlib import Path

import click

from .registry_cmds import json_option, open_registry
from .render import emit_json, size, table

out_option = click.option("--out", required=True, type=click.Path(path_type=Path),
                          help="Folder to write; it must not exist unless --overwrite.")
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
tolerance_option = click.option("--tolerance", type=float, default=1e-4, show_default=True,
                                help="Largest max abs logit difference allowed against the adapter.")


def _quiet() -> None:
    # Loading-progress bars from transformers drown the one line these commands print.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def _checked(report: dict, reused: bool) -> str:
    diff = report.get("max_abs_diff")
    parts = [f"max abs logit diff {diff:.2g}" if isinstance(diff, float) else None]
    gate = report.get("gate") or {}
    if gate.get("applied"):
        parts.append(f"accuracy {gate['accuracy_export']:.2f}% vs adapter {gate['accuracy_adapter']:.2f}%"
                     f" (drop {gate['accuracy_drop']:.2f} <= {gate['max_accuracy_drop']:g})")
    elif gate:
        parts.append("accuracy gate skipped: no eval data")
    parts.append(f"size {size(report.get('sizes', {}).get('total'))}")
    if reused:
        parts.append("reused from the registry")
    return "; ".join(p for p in parts if p)


@click.command(name="merge")
@click.argument("ref")
@out_option
@tolerance_option
@overwrite_option
def merge_cmd(ref: str, out: Path, tolerance: float, overwrite: bool) -> None:
    """Merge DOMAIN@REF into its base and write a plain transformers model folder.

    The merged model is checked against the adapter on probe texts and
    registered as an artifact of the version (see 'adapters show').

    Example usage:

        adapters merge sentiment@production --out ./sentiment-merged
    """
    from loradock.adapters.export.merge import merge_version

    _quiet()
    result = merge_version(open_registry(), ref, out, tolerance=tolerance, overwrite=overwrite)
    click.echo(f"Merged {result.ref} into {result.out} ({_checked(result.report, result.reused)})")


@click.command(name="export")
@click.argument("ref")
@click.option("--format", "fmt", type=click.Choice(["onnx"]), default="onnx", show_default=True,
              help="Export format.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None, help="Quantize weights (dynamic int8).")
@click.option("--opset", type=int, default=None, help="ONNX opset (default 17).")
@click.option("--max-accuracy-drop", type=float, default=1.0, show_default=True,
              help="Points of accuracy the export may lose against the fp32 adapter on the version's eval data.")
@tolerance_option
@out_option
@overwrite_option
def export_cmd(ref: str, fmt: str, quantize: str | None, opset: int | None, max_accuracy_drop: float,
               tolerance: float, out: Path, overwrite: bool) -> None:
    """Export DOMAIN@REF to ONNX (optionally int8) with tokenizer and label map beside it.

    The export is checked against the adapter with onnxruntime and registered
    as an artifact of the version; asking again with the same options reuses it.

    Example usage:

        adapters export sentiment@production --format onnx --quantize int8 --out ./sentiment-onnx
    """
    from loradock.adapters.export.onnx_export import export_onnx

    _quiet()
    result = export_onnx(open_registry(), ref, out, quantize=quantize, opset=opset,
                         max_accuracy_drop=max_accuracy_drop, overwrite=overwrite, tolerance=tolerance, fmt=fmt)
    click.echo(f"Exported {result.ref} as {result.artifact.name} to {result.out} "
               f"({_checked(result.report, result.reused)})")


@click.command(name="predict")
@click.argument("args", nargs=-1, required=True)
@click.option("--onnx", "onnx_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Run an exported ONNX folder through onnxruntime instead of a registered version.")
@json_option
def predict_cmd(args: tuple[str, ...], onnx_dir: Path | None, json_: bool) -> None:
    """Predict labels for TEXT...: 'predict DOMAIN@REF TEXT...' (PEFT) or 'predict --onnx DIR TEXT...'.

    Example usage:

        adapters predict sentiment@production "What a great film"
        adapters predict --onnx ./sentiment-onnx "What a great film"
    """
    from loradock.adapters.predict import predict, predict_onnx

    _quiet()
    if onnx_dir is not None:
        predictions = predict_onnx(onnx_dir, list(args))
    else:
        if len(args) < 2:
            raise click.UsageError("Give a version and at least one text: adapters predict DOMAIN@REF TEXT...")
        predictions = predict(open_registry(), args[0], list(args[1:]))
    if json_:
        emit_json([p.to_dict() for p in predictions])
        return
    table([(p.label, f"{p.score:.4f}", p.text[:60]) for p in predictions], ["label", "score", "text"])


COMMANDS = [merge_cmd, export_cmd, predict_cmd]

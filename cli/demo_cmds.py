"""`adapters demo`: the whole loop on the embedded default, offline, in a few minutes."""

from __future__ import annotations

import sys
from typing import Any

import click

from loradock.registry import PRESETS, Registry

# One text per preset domain, written for this demo.
QUERIES = {
    "medical": "My chest feels tight and my heart races when I climb the stairs.",
    "education": "How do I find the derivative of x squared times sine of x?",
    "sentiment": "A warm, funny film that kept me smiling long after it ended.",
}


def _trained_or_reused(reg: Registry, domain: str) -> tuple[str, bool]:
    """The newest version trained on the embedded sample, training one if there is none."""
    from loradock.adapters.training.options import TrainOptions
    from loradock.adapters.training.train import train

    for version in reg.versions(domain):
        if str(version.data.get("source", "")).startswith("embedded:"):
            return version.ref, True
    # A bar on a terminal only; a piped log (make demo > log) stays readable.
    result = train(reg, domain, TrainOptions(progress=sys.stderr.isatty()))
    assert result.version is not None
    return result.version.ref, False


def _export(reg: Registry, ref: str) -> Any:
    from loradock.adapters.export.prefer_int8 import export_preferring_int8

    # int8 only where it passes its gate on this CPU: the demo's outcome never depends on int8 kernels.
    return export_preferring_int8(reg, ref, reg.home / "exports" / ref.replace("@", "-"))


@click.command(name="demo")
@click.option("--port", type=int, default=0, help="Port for the demo server (default: any free port).")
def demo_cmd(port: int) -> None:
    """Train (or reuse) the three preset domains, export one to ONNX, serve all, query each.

    The export is fp32, plus int8 when int8 passes its accuracy gate on this
    CPU; otherwise one line says what int8 scored and fp32 is kept.

    Runs offline on the embedded all-MiniLM-L6-v2 base. Versions already
    trained on the embedded samples are reused, so a second run is quick.
    """
    import httpx

    from loradock.adapters.predict import predict_onnx
    from loradock.serving.config import ServeConfig
    from loradock.serving.ports import check_bindable
    from loradock.serving.server import serve_in_thread

    check_bindable("127.0.0.1", port)  # before minutes of training, not after
    reg = Registry()
    refs = {}
    for domain in PRESETS:
        ref, reused = _trained_or_reused(reg, domain)
        refs[domain] = ref
        version = reg.resolve(ref)
        accuracy = version.metrics.get("accuracy")
        click.echo(
            f"{'reused ' if reused else 'trained'} {ref:14} eval accuracy {accuracy:.3f}"
            if accuracy is not None
            else f"{'reused ' if reused else 'trained'} {ref}"
        )

    export = _export(reg, refs["sentiment"])
    onnx = predict_onnx(export.chosen.out, [QUERIES["sentiment"]])[0]
    click.echo(
        f"exported {refs['sentiment']} to ONNX {export.precision} at {export.chosen.out}: "
        f"'{QUERIES['sentiment'][:40]}...' -> {onnx.label} ({onnx.score:.2f})"
    )
    click.echo(f"  {export.note}")

    config = ServeConfig(domains=tuple(refs.values()), port=port)
    server = serve_in_thread(config, reg)
    try:
        click.echo(f"serving {', '.join(refs.values())} at {server.url}")
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for domain, text in QUERIES.items():
                reply = client.post("/v1/classify", json={"domain": domain, "inputs": [text], "top_k": 1})
                reply.raise_for_status()
                body = reply.json()
                best = body["results"][0][0]
                click.echo(
                    f"  {domain:10} -> {best['label']:16} {best['score']:.2f}  served by {body['version']} "
                    f"({body['sha256'][:12]})  '{text}'"
                )
    finally:
        server.stop()


COMMANDS = [demo_cmd]

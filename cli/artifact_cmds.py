"""`adapters artifacts`: list a version's artifacts with their paths, and copy one out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .completion import complete_ref
from .errors import INVALID, CliError, NotFound
from .registry_cmds import open_registry, write_json_option
from .render import artifact_location, emit_json, size, table

# Everyday words for the kinds training, merge and export store.
KIND_WORDS = {
    "plots": "plot",
    "eval": "data/eval",
    "metrics": "report/metrics",
    "merge": "merged",
    "full": "full-model",
}
# How to make a kind that is missing, for the error message.
MAKE = {"merged": "adapters merge {ref} --out DIR", "onnx": "adapters export {ref} --format onnx --out DIR"}


class _ListByDefault(click.Group):
    """`adapters artifacts REF` is `adapters artifacts list REF`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group(name="artifacts", cls=_ListByDefault)
def artifacts_group() -> None:
    """A version's artifacts: plots, metrics report, eval split, merged model, ONNX exports.

    \b
    Example usage:
        adapters artifacts sentiment@2
        adapters artifacts get sentiment@2 plots --out ./plots
        adapters artifacts get sentiment@2 onnx/int8-opset17 --out ./sentiment-onnx
    """


def _rows(reg: Any, ref: str) -> list[tuple[Any, str]]:
    """(artifact, scope) for the version's artifacts, then its domain's (full fine-tuned models)."""
    version = reg.resolve(ref)
    return [(a, version.ref) for a in reg.artifacts(version.ref)] + [
        (a, version.domain) for a in reg.domain_artifacts(version.domain)
    ]


@artifacts_group.command(name="list")
@click.argument("ref", metavar="DOMAIN@REF", shell_complete=complete_ref)
@click.option("json_", "--json", is_flag=True, help="Output JSON instead of a table.")
def artifacts_list(ref: str, json_: bool) -> None:
    """List the artifacts of DOMAIN@REF with the path of each (a hash-checked local copy).

    \b
    Example usage:
        adapters artifacts medical@production
        open "$(adapters artifacts medical@production --json | jq -r '.[] | select(.name=="confusion") | .path')"
    """
    reg = open_registry()
    rows = [(a, scope, artifact_location(reg, a)) for a, scope in _rows(reg, ref)]
    if json_:
        emit_json([{**a.to_dict(), "owner": scope, "path": str(path)} for a, scope, path in rows])
        return
    table(
        [
            (f"{a.kind}/{a.name}", scope, len(a.files), size(sum(f["size"] for f in a.files.values())), path)
            for a, scope, path in rows
        ],
        ["artifact", "of", "files", "size", "path"],
    )


def select(artifacts: list[Any], spec: str, ref: str) -> list[Any]:
    """The artifacts KIND or KIND/NAME names; a kind names all of its artifacts."""
    kind, _, name = KIND_WORDS.get(spec, spec).partition("/")
    found = [a for a in artifacts if a.kind == kind and (not name or a.name == name)]
    if not found:
        have = ", ".join(f"{a.kind}/{a.name}" for a in artifacts) or "none"
        hint = MAKE.get(kind, "see them with: adapters artifacts {ref}").format(ref=ref)
        raise NotFound(f"{ref} has no artifact {spec!r} (it has: {have}); {hint}")
    names = [n for a in found for n in a.files]
    if len(names) != len(set(names)):
        choices = ", ".join(f"{a.kind}/{a.name}" for a in found)
        raise CliError(
            f"{spec!r} names several artifacts of {ref} ({choices}); name one, e.g. "
            f"adapters artifacts get {ref} {found[0].kind}/{found[0].name} --out DIR",
            INVALID,
        )
    return found


@artifacts_group.command(name="get")
@click.argument("ref", metavar="DOMAIN@REF", shell_complete=complete_ref)
@click.argument("kind", metavar="KIND[/NAME]")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to write; it must be missing or empty unless --overwrite.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace --out if it is a previous output (never deletes files loradock did not write).",
)
@write_json_option
def artifacts_get(ref: str, kind: str, out: Path, overwrite: bool, json_: bool) -> None:
    """Copy an artifact of DOMAIN@REF into --out (hash-checked; the folder appears whole or not at all).

    KIND is plot (or plots), report (or metrics), data (or eval), merged,
    onnx or full-model; add /NAME where a kind has several, as 'adapters
    artifacts REF' lists them.

    \b
    Example usage:
        adapters artifacts get medical@3 plots --out ./medical-plots
        adapters artifacts get medical@3 eval --out ./medical-eval
        adapters artifacts get medical@3 onnx/int8-opset17 --out ./medical-onnx
    """
    from loradock.adapters.outdir import copy_folder, staged_output

    reg = open_registry()
    version = reg.resolve(ref)
    chosen = select([a for a, _ in _rows(reg, version.ref)], kind, version.ref)
    sources = [reg.artifact_path(a) for a in chosen]
    with staged_output(out, overwrite) as tmp:
        for folder in sources:
            copy_folder(folder, tmp)
    files = sorted(n for a in chosen for n in a.files)
    if json_:
        emit_json(
            {
                "ref": version.ref,
                "artifacts": [f"{a.kind}/{a.name}" for a in chosen],
                "out": str(out.absolute()),
                "files": files,
            }
        )
        return
    click.echo(
        f"Copied {', '.join(f'{a.kind}/{a.name}' for a in chosen)} of {version.ref} to {out} ({', '.join(files)})"
    )


COMMANDS = [artifacts_group]

"""`adapters domains gate | edit | rm`: change or remove a domain (attached to the `domains` group)."""

from __future__ import annotations

from typing import Any

import click

from loradock.registry.gates import QualityGate

from .registry_cmds import domain_argument, domains_group, open_registry, write_json_option
from .render import emit_json


def _show_gate(name: str, gate: QualityGate) -> str:
    return f"{name} gate: {gate.describe()}"


@click.command(name="gate")
@domain_argument
@click.option("--min-accuracy", type=float, default=None, help="Eval accuracy a version must reach (0-1).")
@click.option("--min-macro-f1", type=float, default=None, help="Eval macro-F1 a version must reach (0-1).")
@click.option("--clear", is_flag=True, help="Drop the thresholds (versions must still beat the majority class).")
@write_json_option
def domains_gate(domain: str, min_accuracy: float | None, min_macro_f1: float | None, clear: bool, json_: bool) -> None:
    """Set the quality gate every new version of DOMAIN must pass.

    Every version must beat the majority-class baseline of its eval split; the
    gate adds minimums. A version that fails is registered but marked failed:
    `latest` and aliases do not move to it. Without options, shows the gate.

    Example usage:

    \b
        adapters domains gate medical --min-accuracy 0.9 --min-macro-f1 0.85
        adapters domains gate medical --clear
    """
    reg = open_registry()
    if clear and (min_accuracy is not None or min_macro_f1 is not None):
        raise click.UsageError("Pass --clear or thresholds, not both.")
    if clear:
        gate = reg.update_domain(domain, gate=QualityGate()).gate
    elif min_accuracy is None and min_macro_f1 is None:
        gate = reg.domain(domain).gate
    else:
        current = reg.domain(domain).gate
        gate = reg.update_domain(domain, gate=current.merged(QualityGate(min_accuracy, min_macro_f1))).gate
    if json_:
        emit_json({"domain": domain, **gate.to_dict()})
        return
    click.echo(_show_gate(domain, gate))


@click.command(name="edit")
@domain_argument
@click.option("--description", default=None, help="What the domain is for.")
@click.option("--labels", default=None, help="Comma-separated label names (only while the domain has no versions).")
@click.option("--base", "base_model", default=None, help="Default base model id or folder.")
@click.option("--dataset", default=None, help="Default training data.")
@click.option("--min-accuracy", type=float, default=None, help="Gate: minimum eval accuracy.")
@click.option("--min-macro-f1", type=float, default=None, help="Gate: minimum eval macro-F1.")
@write_json_option
def domains_edit(
    domain: str,
    description: str | None,
    labels: str | None,
    base_model: str | None,
    dataset: str | None,
    min_accuracy: float | None,
    min_macro_f1: float | None,
    json_: bool,
) -> None:
    """Change a domain's description, labels, default base, dataset or gate.

    Labels can change only while the domain has no versions (their heads were
    trained on the old labels).

    Example usage:

    \b
        adapters domains edit tickets --description "Route support tickets"
        adapters domains edit tickets --labels billing,technical,shipping,other
    """
    reg = open_registry()
    changes: dict[str, Any] = {}
    if description is not None:
        changes["description"] = description
    if labels is not None:
        changes["labels"] = tuple(x.strip() for x in labels.split(","))
    if base_model is not None:
        changes["base_model"] = base_model
    if dataset is not None:
        changes["dataset"] = dataset
    if min_accuracy is not None or min_macro_f1 is not None:
        changes["gate"] = reg.domain(domain).gate.merged(QualityGate(min_accuracy, min_macro_f1))
    if not changes:
        raise click.UsageError("Nothing to change: pass --description, --labels, --base, --dataset or a gate option.")
    updated = reg.update_domain(domain, **changes)
    if json_:
        emit_json(updated.to_row())
        return
    click.echo(f"Changed {', '.join(sorted(changes))} of {domain}")


@click.command(name="rm")
@domain_argument
@click.option("--force", is_flag=True, help="Also remove its versions, aliases and artifacts.")
@write_json_option
def domains_rm(domain: str, force: bool, json_: bool) -> None:
    """Remove DOMAIN; refused while it has versions unless --force.

    Everything goes in one transaction, so nothing is left half-removed; the
    files are freed by `adapters gc`. A preset's name stays usable as the
    plain preset.

    Example usage:

    \b
        adapters domains rm tickets --force
    """
    removed = open_registry().remove_domain(domain, force=force)
    if json_:
        emit_json({"domain": domain, "versions_removed": removed})
        return
    click.echo(
        f"Removed domain {domain}"
        + (f" and its {removed} version(s); free their files with: adapters gc" if removed else "")
    )


for _command in (domains_gate, domains_edit, domains_rm):
    domains_group.add_command(_command)

COMMANDS: list[click.Command] = []  # all attached to `adapters domains` above

"""Commands over the registry: domains, register, list, show, path, alias, rm, verify, gc."""

from __future__ import annotations

from typing import Any

import click

from loradock.registry import Domain, LoraRecipe, Registry, VersionInfo, task_name
from loradock.registry.domains import default_base, default_recipe
from loradock.registry.gates import reasons_text as gate_reasons
from loradock.registry.gates import summary as gate_summary

from .completion import complete_domain, complete_ref
from .render import artifact_location, emit_json, metric, size, table

json_option = click.option("json_", "--json", is_flag=True, help="Output JSON instead of a table.")
write_json_option = click.option("json_", "--json", is_flag=True, help="Print the result as JSON (for scripts).")
domain_argument = click.argument("domain", shell_complete=complete_domain)
ref_argument = click.argument("ref", metavar="DOMAIN@REF", shell_complete=complete_ref)


def open_registry() -> Registry:
    return Registry()


@click.group(name="domains")
def domains_group() -> None:
    """Domains: presets (medical, education, sentiment) and your own."""


@domains_group.command(name="list")
@json_option
def domains_list(json_: bool) -> None:
    """List domains with their task, labels and version counts."""
    reg = open_registry()
    domains = reg.domains()
    counts = {d.name: len(reg.versions(d.name)) for d in domains}
    if json_:
        emit_json([{**d.to_row(), "versions": counts[d.name]} for d in domains])
        return
    table(
        [
            (d.name, d.task, len(d.labels), ",".join(d.labels), counts[d.name], "preset" if d.preset else "user")
            for d in domains
        ],
        ["domain", "task", "labels", "names", "versions", "kind"],
    )


@domains_group.command(name="add")
@click.argument("name")
@click.option(
    "--task",
    default="classification",
    show_default=True,
    help="classification or generation (or the Hugging Face names text-classification, text-generation).",
)
@click.option("--labels", default=None, help="Comma-separated label names, e.g. low,medium,high (classification).")
@click.option(
    "--base",
    "base_model",
    default=None,
    help="Base model id or folder (default: all-MiniLM-L6-v2; for generation SmolLM2-135M-Instruct, embedded).",
)
@click.option("--dataset", default=None, help="Default training data: hf:NAME or a CSV/JSONL/Parquet path.")
@click.option("--description", default="", help="What the domain is for.")
@click.option("--lr", type=float, default=None, help="Default learning rate for this domain.")
@click.option("--epochs", type=int, default=None, help="Default epochs for this domain.")
@write_json_option
def domains_add(
    name: str,
    task: str,
    labels: str | None,
    base_model: str | None,
    dataset: str | None,
    description: str,
    lr: float | None,
    epochs: int | None,
    json_: bool,
) -> None:
    """Define a domain of your own.

    Example usage:

    \b
        adapters domains add legal --labels contract,tort,criminal
        adapters domains add physics --task generation
    """
    stored_task = task_name(task)
    recipe = default_recipe(stored_task)
    overrides: dict[str, Any] = {k: v for k, v in {"lr": lr, "epochs": epochs}.items() if v is not None}
    if overrides:
        recipe = LoraRecipe.from_dict({**recipe.to_dict(), **overrides})
    domain = Domain(
        name=name,
        labels=tuple(x.strip() for x in labels.split(",")) if labels else (),
        task=stored_task,
        base_model=base_model or default_base(stored_task),
        dataset=dataset,
        description=description,
        recipe=recipe,
    )
    open_registry().add_domain(domain)
    if json_:
        emit_json(domain.to_row())
        return
    if domain.generation:
        click.echo(f"Added {domain.task} domain {name} on base {domain.base_model}")
        return
    click.echo(f"Added domain {name} with labels {', '.join(domain.labels)}")


@domains_group.command(name="show")
@click.argument("name", shell_complete=complete_domain)
@json_option
def domains_show(name: str, json_: bool) -> None:
    """Show a domain's labels, base model and training recipe."""
    domain = open_registry().domain(name)
    row = domain.to_row()
    if json_:
        emit_json(row)
        return
    for key in ("name", "task", "labels", "base_model", "dataset", "description"):
        click.echo(f"{key:12} {row[key]}")
    click.echo("recipe       " + ", ".join(f"{k}={v}" for k, v in row["recipe"].items()))
    click.echo("gate         " + domain.gate.describe())


@click.command(name="register")
@domain_argument
@click.argument("path", type=click.Path(file_okay=False, path_type=str))
@click.option("--alias", "aliases", multiple=True, help="Also point this alias at the new version.")
@click.option("--description", default="", help="What this version is.")
@click.option("--parent", default=None, help="The version this one was derived from, e.g. medical@2.")
@click.option("--base", "base_model", default=None, help="Base model (default: from adapter_config.json).")
@click.option("--new-version", is_flag=True, help="Register a new version even if an existing one has identical files.")
@write_json_option
def register_cmd(
    domain: str,
    path: str,
    aliases: tuple[str, ...],
    description: str,
    parent: str | None,
    base_model: str | None,
    new_version: bool,
    json_: bool,
) -> None:
    """Register a folder written by PEFT's save_pretrained() as DOMAIN's next version.

    Files identical to an existing version of DOMAIN are not stored twice:
    that version is returned (its --alias options still apply) unless
    --new-version.

    Example usage:

    \b
        adapters register medical ./my_peft_folder --alias staging
        adapters register medical ./my_peft_folder --json | jq -r .ref
    """
    from pathlib import Path

    from loradock.adapters.registration import base_for_folder

    reg = open_registry()
    reg.check_folder(domain, Path(path))
    base = base_for_folder(Path(path), reg.domain(domain).base_model, base_model, reg)
    info = VersionInfo(
        **base.record(),
        parent=parent,
        description=description,
        provenance={"source": "register", "path": str(Path(path).resolve()), **base.provenance()},
    )
    version = reg.register(domain, Path(path), info, aliases=aliases, new_version=new_version)
    if json_:
        emit_json(version.to_dict())
    elif version.reused:
        click.echo(f"Same files as {version.ref}; not registered again (--new-version registers a copy)")
    else:
        click.echo(f"Registered {version.ref} ({version.sha256[:12]}, {size(version.size_bytes)})")


@click.command(name="list")
@click.argument("domain", required=False, shell_complete=complete_domain)
@click.option("--limit", type=int, default=50, show_default=True, help="Newest N versions; 0 for all.")
@json_option
def list_cmd(domain: str | None, limit: int, json_: bool) -> None:
    """List versions, newest first, of one domain or all."""
    versions = open_registry().versions(domain, limit=limit or None)
    if json_:
        emit_json([v.to_dict() for v in versions])
        return
    table(
        [
            (
                v.ref,
                ",".join(v.aliases),
                v.sha256[:12],
                size(v.size_bytes),
                metric(v.metrics, "accuracy"),
                gate_summary(v.gate),
                v.created_at[:19].replace("T", " "),
                v.description[:40],
            )
            for v in versions
        ],
        ["version", "aliases", "sha256", "size", "accuracy", "gate", "created", "description"],
    )


@click.command(name="show")
@ref_argument
@json_option
def show_cmd(ref: str, json_: bool) -> None:
    """Show everything recorded about DOMAIN@REF, its artifacts and where they are included.

    Example usage:

    \b
        adapters show medical@staging
        adapters artifacts get medical@staging plots --out ./plots
    """
    from loradock.adapters.architectures import recorded_targets

    reg = open_registry()
    version = reg.resolve(ref)
    artifacts = reg.artifacts(version.ref)
    paths = {a.id: artifact_location(reg, a) for a in artifacts}
    if json_:
        emit_json({**version.to_dict(), "artifacts": [{**a.to_dict(), "path": str(paths[a.id])} for a in artifacts]})
        return
    rows = [
        ("version", version.ref),
        ("aliases", ", ".join(version.aliases) or "-"),
        ("sha256", version.sha256),
        ("kind", version.kind),
        ("task", version.task),
        ("labels", ", ".join(version.labels)),
        ("base", f"{version.base_model} ({(version.base_fingerprint or '-')[:19]})"),
        ("lora", ", ".join(f"{k}={v}" for k, v in version.peft_config.items() if v is not None)),
        (
            "targets",
            recorded_targets(version.train_args.get("target_modules"), version.peft_config.get("target_modules")),
        ),
        ("data", ", ".join(f"{k}={v}" for k, v in version.data.items()) or "-"),
        (
            "metrics",
            ", ".join(
                f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                for k, v in version.metrics.items()
                if not isinstance(v, (dict, list))
            )
            or "-",
        ),
        ("gate", gate_summary(version.gate) + (f": {gate_reasons(version.gate)}" if version.failed else "")),
        ("parent", version.parent or "-"),
        ("created", version.created_at),
        ("size", size(version.size_bytes)),
        ("description", version.description or "-"),
    ]
    if version.provenance:
        rows.append(("provenance", ", ".join(f"{k}={v}" for k, v in version.provenance.items())))
    for name, f in version.files.items():
        rows.append(("file", f"{name} {size(f['size'])} {f['sha256'][:12]}"))
    for a in artifacts:
        rows.append(("artifact", f"{a.kind}/{a.name} {paths[a.id]}"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


@click.command(name="path")
@ref_argument
def path_cmd(ref: str) -> None:
    """Print a local folder holding DOMAIN@REF that PeftModel.from_pretrained loads.

    Versions trained by loradock also hold config.json (base config with the
    label names); the README's "Plain PEFT" snippet loads them with names.

    Example usage:

    \b
        python -c "from peft import PeftConfig; print(PeftConfig.from_pretrained('$(adapters path medical@production)'))"
    """
    click.echo(str(open_registry().path(ref)))


@click.group(name="alias")
def alias_group() -> None:
    """Movable names per domain: staging, production, ..."""


@alias_group.command(name="set")
@domain_argument
@click.argument("alias")
@click.argument("version")
@click.option("--force", is_flag=True, help="Point it at a version that failed its quality gate anyway.")
@write_json_option
def alias_set(domain: str, alias: str, version: str, force: bool, json_: bool) -> None:
    """Point DOMAIN@ALIAS at VERSION (a number or another alias).

    A version that failed its quality gate is refused (exit 6) unless --force.

    Example usage:

    \b
        adapters alias set medical production 3
        adapters alias set medical production staging
    """
    reg = open_registry()
    target = reg.set_alias(domain, alias, version, force=force)
    if json_:
        emit_json(
            {"domain": domain, "alias": alias, "ref": target.ref, "number": target.number, "sha256": target.sha256}
        )
        return
    click.echo(f"{domain}@{alias} -> {target.ref}")


@alias_group.command(name="rm")
@domain_argument
@click.argument("alias")
@write_json_option
def alias_rm(domain: str, alias: str, json_: bool) -> None:
    """Remove an alias (the version stays)."""
    open_registry().remove_alias(domain, alias)
    if json_:
        emit_json({"domain": domain, "alias": alias, "removed": True})
        return
    click.echo(f"Removed {domain}@{alias}")


@alias_group.command(name="list")
@click.argument("domain", required=False, shell_complete=complete_domain)
@json_option
def alias_list(domain: str | None, json_: bool) -> None:
    """List aliases and the versions they name."""
    reg = open_registry()
    rows = reg.aliases(domain)
    if json_:
        emit_json(rows)
        return
    table(
        [(r["domain"], r["name"], f"{r['domain']}@{r['number']}", r["updated_at"][:19]) for r in rows],
        ["domain", "alias", "version", "updated"],
    )


@alias_group.command(name="history")
@domain_argument
@click.argument("alias")
@json_option
def alias_history(domain: str, alias: str, json_: bool) -> None:
    """Every move of an alias; set it back to an old version to roll back."""
    events = open_registry().alias_history(domain, alias)
    if json_:
        emit_json([e.to_dict() for e in events])
        return
    table(
        [(e.at[:19].replace("T", " "), e.action, e.old or "-", e.new or "-") for e in events],
        ["when", "action", "from", "to"],
    )


@click.command(name="rm")
@ref_argument
@click.option("--force", is_flag=True, help="Remove even if aliases point at it (they are removed too).")
@write_json_option
def rm_cmd(ref: str, force: bool, json_: bool) -> None:
    """Remove DOMAIN@N; its number is never reused. Blobs go at the next 'adapters gc'."""
    version = open_registry().remove(ref, force=force)
    if json_:
        emit_json({**version.to_dict(), "removed": True})
        return
    click.echo(f"Removed {version.ref}")


@click.command(name="verify")
@json_option
def verify_cmd(json_: bool) -> None:
    """Rehash every stored file and check the index; exit 1 on any damage."""
    report = open_registry().verify()
    if json_:
        emit_json(
            {"checked": report.checked, "ok": report.ok, "problems": report.problems, "leftovers": report.leftovers}
        )
    elif report.ok:
        click.echo(f"OK: {report.checked} blobs verified, index intact")
    else:
        for p in report.problems:
            click.echo(f"{p['problem']}: {p['sha256'] or ''} used by {', '.join(p['used_by'])}")
    if not json_:
        for item in report.leftovers:
            click.echo(f"leftover {item['what']}: {item['path']} ({size(item['bytes'])}); 'adapters gc' removes it")
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.command(name="gc")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@write_json_option
def gc_cmd(dry_run: bool, json_: bool) -> None:
    """Remove stored files that no version or artifact refers to."""
    report = open_registry().gc(dry_run=dry_run)
    if json_:
        emit_json(
            {
                "removed": report.removed,
                "freed_bytes": report.freed_bytes,
                "dry_run": report.dry_run,
                "leftovers": report.leftovers,
            }
        )
        return
    verb = "Would remove" if dry_run else "Removed"
    click.echo(
        f"{verb} {len(report.removed)} blobs and {len(report.leftovers)} stale copies or partial writes, "
        f"{size(report.freed_bytes)}"
    )


COMMANDS = [domains_group, register_cmd, list_cmd, show_cmd, path_cmd, alias_group, rm_cmd, verify_cmd, gc_cmd]

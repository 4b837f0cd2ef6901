"""`adapters push` and `adapters pull`: share versions through a Hugging Face Hub repo."""

from __future__ import annotations

import dataclasses

import click

from .registry_cmds import open_registry, write_json_option
from .render import emit_json


@click.command(name="push")
@click.argument("ref", metavar="DOMAIN[@REF]")
@click.option("--repo", "repo_id", required=True, metavar="OWNER/NAME", help="Hub repo to push to (created if needed).")
@click.option("--private", is_flag=True, help="Create the repo as private (an existing repo keeps its visibility).")
@click.option("--all-versions", is_flag=True, help="Push every version of the domain, oldest first.")
@click.option(
    "--license", "license_", default=None, help="License id for the model card (default: apache-2.0, the base's)."
)
@click.option(
    "--base-id",
    default=None,
    metavar="ORG/NAME",
    help="Hub id to publish as the base of a version trained on a local base folder.",
)
@write_json_option
def push_cmd(
    ref: str, repo_id: str, private: bool, all_versions: bool, license_: str | None, base_id: str | None, json_: bool
) -> None:
    """Upload a version to the Hub as tag vN, with its model card, plots and metadata.

    Aliases of versions on the Hub become branches of the same name, so
    `revision="production"` resolves there too. The endpoint is HF_ENDPOINT
    (default huggingface.co); the token is huggingface_hub's (HF_TOKEN or
    'hf auth login').

    A version whose base is a local folder loradock knows no Hub id for
    (its weights are neither the embedded default's nor those of a base in
    the registry) is refused unless --base-id names the Hub model with those
    weights.

    Example usage:

    \b
        adapters push sentiment@2 --repo alice/sentiment-lora
        adapters push tickets@1 --repo alice/tickets-lora --base-id FacebookAI/roberta-base
    """
    from loradock.adapters.hub.push import push

    report = push(
        open_registry(), ref, repo_id, private=private, all_versions=all_versions, license=license_, base_id=base_id
    )
    if json_:
        emit_json(dataclasses.asdict(report))
        return
    for v in report.versions:
        if v.uploaded:
            click.echo(f"Pushed {v.ref} to {report.repo_id}@{v.tag} (commit {v.commit_sha[:12]})")
        else:
            click.echo(
                f"{v.ref} is already on the Hub as {report.repo_id}@{v.tag} (commit {v.commit_sha[:12]}); nothing uploaded"
            )
    for alias, tag in report.aliases.items():
        click.echo(f"Alias {alias} -> {report.repo_id}@{tag}")
    for alias in report.skipped_aliases:
        click.echo(f"Alias {alias} not mirrored: it clashes with a Hub ref name (main, vN)", err=True)
    click.echo(report.url)


@click.command(name="pull")
@click.argument("spec", metavar="OWNER/NAME[@REV]")
@click.option("--domain", default=None, help="Domain to register into (needed for plain PEFT repos without tags).")
@click.option("--force", is_flag=True, help="Register even if the local base model's fingerprint differs.")
@click.option(
    "--alias",
    "aliases",
    multiple=True,
    metavar="NAME",
    help="Point this local alias at the pulled version (pull never moves one otherwise).",
)
@write_json_option
def pull_cmd(spec: str, domain: str | None, force: bool, aliases: tuple[str, ...], json_: bool) -> None:
    """Download a version from the Hub, verify its hashes and register it locally.

    REV is a tag (v2, or just 2), a branch or alias (production) or a commit;
    the default is main. A repo pushed with plain PEFT works too: its metadata
    is inferred from adapter_config.json and the model card.

    Pull never moves a local alias by itself: the repo's branches at that
    commit are shown and recorded, and --alias moves one explicitly (subject
    to the quality gate). Only the PEFT files and plots are downloaded.

    Example usage:

    \b
        adapters pull alice/sentiment-lora@v2
        adapters pull alice/sentiment-lora@production --alias production
    """
    from loradock.adapters.hub.pull import pull

    report = pull(open_registry(), spec, domain=domain, force=force, aliases=aliases)
    v = report.version
    if json_:
        emit_json({**dataclasses.asdict(report), "version": v.to_dict()})
        return
    where = f"{report.repo_id}@{report.remote_ref or report.revision} (commit {report.commit_sha[:12]})"
    if report.created:
        click.echo(f"Pulled {where} as {v.ref} ({v.sha256[:12]})" + (" [metadata inferred]" if report.inferred else ""))
    else:
        click.echo(f"{where} is already registered as {v.ref}; nothing new registered")
    for alias in report.aliases:
        click.echo(f"Alias {v.domain}@{alias} -> {v.ref}")
    if report.remote_branches:
        click.echo(
            f"Remote branches at this commit: {', '.join(report.remote_branches)} "
            f"(local aliases unchanged; move one with --alias NAME)"
        )
    if report.unverified:
        click.echo(
            f"{v.ref} records no base fingerprint and its base is not on this machine: it is unverified "
            "(adapters serve refuses it unless --allow-unverified-base)",
            err=True,
        )


COMMANDS = [push_cmd, pull_cmd]

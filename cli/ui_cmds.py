"""`adapters ui`: the web console over the registry alone (`adapters serve` mounts it at /ui too)."""

from __future__ import annotations

import click

from .errors import CliError, exit_code


@click.command(name="ui")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; anything but loopback exposes the registry to the network.",
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option(
    "--api-key-env",
    default=None,
    metavar="VAR",
    help="Require the token in $VAR to read, and allow alias moves with it (default: read-only, no token).",
)
def ui(host: str, port: int, api_key_env: str | None) -> None:
    """Browse the registry in a web browser: domains, versions, plots, comparisons, alias history.

    Read-only unless --api-key-env names the token that alias moves need.
    Every asset is in the package; nothing is fetched from the network.

    Example usage:

        adapters ui                     # then open http://127.0.0.1:8080/ui/

        ADAPTERS_TOKEN=s3cret adapters ui --api-key-env ADAPTERS_TOKEN
    """
    import uvicorn

    from loradock.registry import Registry
    from loradock.serving.connlimits import uvicorn_config
    from loradock.serving.console import ConsoleConfigError, create_console_app
    from loradock.serving.console.security import is_loopback
    from loradock.serving.ports import check_bindable

    check_bindable(host, port)
    try:
        app = create_console_app(Registry(), api_key_env)
    except ConsoleConfigError as exc:
        raise CliError(str(exc), exit_code(exc)) from None
    if not is_loopback(host) and not api_key_env:
        click.echo(
            f"Warning: {host} is not loopback and no --api-key-env is set: anyone who can reach it "
            "can read the registry.",
            err=True,
        )
    server = uvicorn.Server(uvicorn_config(app, host, port, log_level="warning"))
    click.echo(
        f"Console at http://{host}:{port or 'any-free-port'}/ui/ "
        f"({'alias moves need the token' if api_key_env else 'read-only'}); Ctrl-C stops it."
    )
    server.run()


COMMANDS = [ui]

"""The web console: server-rendered pages over the registry (and, under `adapters serve`, the engine).

    from loradock.serving.console import create_console_app, mount_console
    app = create_console_app(registry)                 # what `adapters ui` runs
    mount_console(app, registry, engine, api_key_env)  # what `adapters serve` adds at /ui

Every asset ships in this package (no CDN); pages carry a strict CSP (no inline scripts).
Importing it does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .security import AccessPolicy, ConsoleAuthError, ConsoleConfigError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from loradock.registry import Registry

    from ..engine import ServingEngine
    from .pages import Console

PREFIX = "/ui"


def mount_console(
    app: FastAPI,
    registry: Registry,
    engine: ServingEngine | None = None,
    api_key_env: str | None = None,
    prefix: str = PREFIX,
) -> Console:
    """Add the console's pages under `prefix` (the live page too when `engine` is given)."""
    from .pages import mount

    return mount(app, registry, engine, AccessPolicy.from_env(api_key_env), prefix)


def create_console_app(registry: Registry, api_key_env: str | None = None) -> FastAPI:
    """A standalone app over the registry alone: the console at /ui, `/` redirects there."""
    from fastapi import FastAPI
    from fastapi.responses import RedirectResponse

    app = FastAPI(title="loradock console", docs_url=None, redoc_url=None, openapi_url=None)
    mount_console(app, registry, None, api_key_env)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    return app


__all__ = ["PREFIX", "AccessPolicy", "ConsoleAuthError", "ConsoleConfigError", "create_console_app", "mount_console"]

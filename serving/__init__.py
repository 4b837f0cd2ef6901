"""loradock's server: one base model, many domain adapters, mixed batches.

Public API (importing `serving` does not import torch):

    from loradock.serving import ServeConfig
    from loradock.serving.app import create_app            # create_app(config, registry=None) -> FastAPI
    from loradock.serving.server import run, serve_in_thread  # run(config) blocks; serve_in_thread(config) -> BackgroundServer(.url, .stop())
"""

from .config import ServeConfig, default_domains, parse_domains
from .errors import ServingError

__all__ = ["ServeConfig", "ServingError", "default_domains", "parse_domains"]

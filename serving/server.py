"""Running the app with uvicorn: in the foreground (`adapters serve`) or in a background thread."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from loradock.registry import Registry

from .config import ServeConfig
from .errors import ServingError

log = logging.getLogger(__name__)


def set_process_threads(config: ServeConfig) -> None:
    """torch's intra-op threads for a process that only serves (process-wide, so not done for in-thread servers)."""
    import torch

    if config.device != "cuda" and torch.get_num_threads() != config.torch_threads:
        torch.set_num_threads(config.torch_threads)


def run(config: ServeConfig, registry: Registry | None = None, announce: Any = None) -> None:
    """Serve until interrupted; `announce(text)` is called once every adapter has loaded."""
    import uvicorn

    from .app import create_app

    set_process_threads(config)
    app = create_app(config, registry)
    if announce is not None:
        served = ", ".join(row["version"] for row in app.state.engine.describe())
        announce(f"Serving {served} on {config.host}:{config.port or 'any free port'} (docs at /docs)")
    uvicorn.run(app, host=config.host, port=config.port, log_level="info")


class BackgroundServer:
    """A uvicorn server in a daemon thread: `with BackgroundServer(config) as s: httpx.get(s.url + ...)`."""

    def __init__(self, config: ServeConfig, registry: Registry | None = None, app: Any = None) -> None:
        import uvicorn

        from .app import create_app

        self.app = app or create_app(config, registry)
        self._server = uvicorn.Server(uvicorn.Config(self.app, host=config.host, port=config.port,
                                                     log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._server.run, name="loradock-uvicorn", daemon=True)
        self.host = config.host
        self.port = config.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServingError(f"The server did not start on {self.host}:{self.port}; is the port taken?")
            time.sleep(0.02)
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:  # port 0 means "any free port": report the real one
            self.port = sockets[0].getsockname()[1]
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_in_thread(config: ServeConfig, registry: Registry | None = None) -> BackgroundServer:
    """Start a server in the background; call `.stop()` when done (the lead's `adapters demo` uses this)."""
    return BackgroundServer(config, registry).start()

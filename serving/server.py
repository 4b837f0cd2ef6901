"""Running the app with uvicorn: in the foreground (`adapters serve`) or in a background thread."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from loradock.registry import Registry

from .config import ServeConfig
from .connlimits import ConnectionLimits, uvicorn_config
from .errors import ServingError
from .ports import check_bindable

log = logging.getLogger(__name__)


# Fields our logging calls pass in `extra=` (domain, version, content hash, what happened).
_EXTRA_FIELDS = ("event", "domain", "version", "sha256", "tier")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the structured fields given in `extra`."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: getattr(record, k) for k in _EXTRA_FIELDS if hasattr(record, k)})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(level: str | int, log_format: str = "text") -> None:
    """The root logger at `level`, in text or JSON lines; uvicorn's loggers go through it too."""
    formatter: logging.Formatter = (
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else getattr(logging, level.upper()))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True


def set_process_threads(config: ServeConfig) -> None:
    """torch's intra-op threads for a process that only serves (process-wide, so not done for in-thread servers)."""
    import torch

    if config.device != "cuda" and torch.get_num_threads() != config.torch_threads:
        torch.set_num_threads(config.torch_threads)


def run(config: ServeConfig, registry: Registry | None = None, announce: Any = None) -> None:
    """Serve until interrupted; `announce(text)` is called once every adapter has loaded."""
    import uvicorn

    from .app import create_app

    check_bindable(config.host, config.port)  # before the model loads: a taken port fails in a second
    configure_logging(config.log_level, config.log_format)
    set_process_threads(config)
    app = create_app(config, registry)
    if announce is not None:
        served = ", ".join(row["version"] for row in app.state.engine.describe())
        announce(f"Serving {served} on {config.host}:{config.port or 'any free port'} (docs at /docs)")
    # log_config=None: uvicorn keeps the root logger set up by configure_logging (level and format).
    uvicorn.Server(uvicorn_config(app, config.host, config.port, log_config=None, access_log=config.access_log)).run()


class BackgroundServer:
    """A uvicorn server in a daemon thread: `with BackgroundServer(config) as s: httpx.get(s.url + ...)`."""

    def __init__(
        self,
        config: ServeConfig,
        registry: Registry | None = None,
        app: Any = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        import uvicorn

        from .app import create_app

        self.app = app or create_app(config, registry)
        self._server = uvicorn.Server(
            uvicorn_config(
                self.app,
                config.host,
                config.port,
                limits,
                log_level="warning",
                lifespan="on",
                access_log=config.access_log,
            )
        )
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

"""Checking that a server can bind its address before it loads anything.

uvicorn reports a port in use by logging and calling `sys.exit(1)`, after the
model has loaded; checking first turns that into a PortInUseError that the CLI
prints like any other error, within a second of starting.
"""

from __future__ import annotations

import errno
import socket

from .errors import ServingError


class PortInUseError(ServingError, OSError):
    """The address a server was asked to listen on cannot be bound; nothing was started."""


def check_bindable(host: str, port: int, flag: str = "--port") -> None:
    """Raise PortInUseError unless `host:port` can be bound now (port 0, any free port, always can)."""
    if not 0 <= port <= 65535:
        raise PortInUseError(
            f"Port {port} is not a TCP port (0-65535); pass {flag} between 1 and 65535, or 0 for any free port."
        )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise PortInUseError(
            f"Cannot listen on host {host!r} ({exc}); pass --host 127.0.0.1, 0.0.0.0 or an address of this machine."
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: a TIME_WAIT port is free
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    f"Port {port} on {host} is already in use (another server?); stop that one or pass another {flag}."
                ) from None
            raise PortInUseError(
                f"Cannot listen on {host}:{port} ({exc.strerror or exc}); pass another --host or {flag}."
            ) from None

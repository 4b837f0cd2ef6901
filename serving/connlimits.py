"""Connection limits for every uvicorn server we start (`adapters serve`, `adapters ui`, in-thread servers).

uvicorn closes an idle keep-alive connection, but a connection that sends half a request line
and headers and then waits is held forever, and each one holds a file descriptor: 300 of them
under a 256-file limit made every genuine request fail with "connection reset" (issue 22, item 3).
So each connection here gets:

- a header deadline: request line and headers must arrive within `header_timeout_s` of the
  connection opening (or of the first byte of a keep-alive request), else it is closed;
- a keep-alive timeout (uvicorn's own) for idle connections between requests;
- a size limit on an incomplete request head (h11's `max_incomplete_event_size`; over it: 400);
- a connection cap below the process's file limit. A connection over the cap closes the
  oldest connection that is idle or still sending its head (nothing is being served on it);
  only when every connection is busy with a request is the new one answered 503.

The process's soft RLIMIT_NOFILE is raised toward the hard limit first, so the cap can be large.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

# File descriptors kept for everything but client sockets: the registry, blobs, logs, model files.
RESERVED_FDS = 128
WANTED_FDS = 65536

_BUSY_TEXT = b"Too many open connections; retry in a second.\n"
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nretry-after: 1\r\nconnection: close\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT)
)


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a client may take to send its request head, how many connections are held, how big a head is."""

    header_timeout_s: float = 10.0
    keep_alive_s: int = 5
    max_connections: int = 4096
    max_head_bytes: int = 16 * 1024  # request line + headers; our largest legal head is well under 2 KB

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "keep_alive_s", "max_connections", "max_head_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"ConnectionLimits.{name} must be a positive number, got {value!r}.")

    def effective_max_connections(self) -> int:
        """The cap, lowered to fit under the process's open-file limit."""
        soft = open_file_limit()
        return max(1, min(self.max_connections, soft - RESERVED_FDS)) if soft else self.max_connections


def open_file_limit() -> int | None:
    """The process's soft RLIMIT_NOFILE (None where there is no such limit, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def raise_open_file_limit(wanted: int = WANTED_FDS) -> int | None:
    """Raise the soft RLIMIT_NOFILE toward the hard limit (never above `wanted`); returns the soft limit."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):  # some sandboxes refuse; the cap then follows the old limit
            log.warning("could not raise the open-file limit from %d to %d", soft, target)
    return open_file_limit()


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol plus a header deadline and a connection cap (see the module docstring)."""

    limits = ConnectionLimits()
    max_connections = limits.max_connections

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None  # set while no request is being served on this connection

    # -- the header deadline ------------------------------------------------------

    def _waiting_for_head(self) -> bool:
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def _start_head_deadline(self) -> None:
        if self._head_deadline is None:
            self._head_deadline = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _stop_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._waiting_for_head() and not self.transport.is_closing():
            log.debug("closing a connection that sent no complete request head in %.1f s", self.limits.header_timeout_s)
            self.transport.close()

    # -- uvicorn's hooks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._idle_since = time.monotonic()
        self._start_head_deadline()
        if len(self.connections) > self.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._waiting_for_head():
            # Part of a head (or a keep-alive request's first bytes): the deadline runs from now, once.
            self._start_head_deadline()
        else:
            self._stop_head_deadline()
            self._idle_since = None

    def on_response_complete(self) -> None:
        self._idle_since = time.monotonic()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_deadline()
        super().connection_lost(exc)

    # -- the connection cap ---------------------------------------------------------

    def _make_room(self) -> None:
        """Over the cap: close the longest-idle other connection, or refuse this one with 503."""
        idle = [
            c
            for c in self.connections
            if c is not self
            and isinstance(c, LimitedH11Protocol)
            and c._idle_since is not None
            and c._waiting_for_head()
            and not c.transport.is_closing()
        ]
        if idle:
            oldest = min(idle, key=lambda c: c._idle_since or 0.0)
            oldest.transport.close()
            return
        log.warning("connection cap (%d) reached with every connection busy; answering 503", self.max_connections)
        self.transport.write(BUSY)
        self.transport.close()


def protocol_for(limits: ConnectionLimits) -> type[LimitedH11Protocol]:
    """A protocol class bound to `limits` (uvicorn instantiates the class itself, one per connection)."""
    return type(
        "LimitedH11Protocol",
        (LimitedH11Protocol,),
        {"limits": limits, "max_connections": limits.effective_max_connections()},
    )


def uvicorn_config(app: Any, host: str, port: int, limits: ConnectionLimits | None = None, **options: Any) -> Any:
    """uvicorn.Config for `app` with our limits; the open-file limit is raised first."""
    import uvicorn

    limits = limits or ConnectionLimits()
    raise_open_file_limit(limits.max_connections + RESERVED_FDS)
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_for(limits),
        timeout_keep_alive=limits.keep_alive_s,
        h11_max_incomplete_event_size=limits.max_head_bytes,
        **options,
    )

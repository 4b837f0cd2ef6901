"""RequestGuard: the bearer token and the body size, checked before any body byte is read.

An ASGI middleware rather than a FastAPI dependency: a dependency runs after FastAPI
has read and parsed the body, so a client without a token could make the server
buffer hundreds of megabytes before its 401 (security review, issue 10 finding 3).
Starlette's own `RequestBodyLimitMiddleware` answers in plain text and only exists in
recent releases; this one answers in the API's error envelope.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import ServeConfigError

UNAUTHORIZED = "Missing or wrong bearer token; send 'Authorization: Bearer <key>'."


def read_api_key(api_key_env: str | None, error: type[Exception] = ServeConfigError) -> str | None:
    """The key in $`api_key_env` (None when no variable is named), read once at start-up.

    HTTP headers arrive as latin-1 and the key is compared as bytes, so a non-ASCII key could
    never match; it is refused here rather than failing every request later (issue 22, item 7).
    """
    if not api_key_env:
        return None
    key = os.environ.get(api_key_env, "")
    if not key:
        raise error(
            f"--api-key-env {api_key_env} names an unset or empty environment variable; export {api_key_env}=... first."
        )
    bad = next((i for i, c in enumerate(key) if not (c.isascii() and c.isprintable()) or c.isspace()), None)
    if bad is not None:  # the position only: the key itself never goes into a message or a log
        raise error(
            f"The key in ${api_key_env} has a non-ASCII, space or control character at position {bad + 1}; "
            "HTTP headers carry printable ASCII only, so no client could send it. Use an ASCII key, "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'."
        )
    return key


def bearer_ok(header: str | None, key: str) -> bool:
    """`Authorization: Bearer <key>`, compared in constant time."""
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode("utf-8", "replace"), key.encode())


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"Request body over {limit} bytes; send fewer or shorter texts per request (or raise --max-body-bytes).",
        )


class RequestGuard:
    """Refuses, in this order: a missing/wrong token (401), a declared body over the limit (413),
    and a streamed (chunked) body that grows past it (413, raised from `receive`)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        key: str | None,
        public: set[str],
        public_prefixes: tuple[str, ...],
        max_body_bytes: int,
        error: Callable[..., Any],
    ) -> None:
        self.app = app
        self.key = key
        self.public = public
        self.public_prefixes = public_prefixes
        self.max_body_bytes = max_body_bytes
        self.error = error  # the app's envelope builder: error(status, message, headers=...)

    def _needs_token(self, path: str) -> bool:
        return self.key is not None and path not in self.public and not path.startswith(self.public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self._needs_token(scope.get("path", "")) and not bearer_ok(headers.get("authorization"), self.key or ""):
            await self.error(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await self.error(400, f"Invalid Content-Length header {declared!r}.")(scope, receive, send)
                return
            if int(declared) > self.max_body_bytes:
                too_large = BodyTooLarge(self.max_body_bytes)
                await self.error(413, too_large.detail)(scope, receive, send)
                return
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)  # FastAPI and Starlette pass HTTPExceptions to the app's handler
            return message

        return limited

"""The console's access policy: who may read, who may write, and the headers every page carries.

Policy (the same as the API's `--api-key-env`):
- no key configured: every page is readable by whoever reaches the port (127.0.0.1 by default)
  and the console is read-only; alias moves are refused with a hint;
- a key configured: every page needs it, either as `Authorization: Bearer KEY` or through a
  login form that sets a signed, HttpOnly, SameSite=Strict session cookie; alias moves need
  that too, plus a CSRF token (cookie + form field) and a confirmation step.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass

from fastapi import Request

from ..guard import read_api_key

SESSION_COOKIE = "loradock_session"
CSRF_COOKIE = "loradock_csrf"
SESSION_TTL_S = 12 * 3600

# No inline script or style anywhere in the console, so scripts and styles can be 'self' only.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


class ConsoleAuthError(PermissionError):
    """A request that lacks the token (reads) or the token and CSRF proof (writes)."""


class LoginRequired(ConsoleAuthError):
    pass


class ConsoleConfigError(ValueError):
    """`--api-key-env` names an unset or empty variable."""


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host in _LOOPBACK_NAMES


@dataclass(frozen=True)
class AccessPolicy:
    """The key (if any) read once at start-up; checks for reads, writes and the Host header."""

    key: str | None = None

    @classmethod
    def from_env(cls, api_key_env: str | None) -> AccessPolicy:
        return cls(read_api_key(api_key_env, ConsoleConfigError))

    @property
    def writable(self) -> bool:
        return self.key is not None

    def _sign(self, text: str) -> str:
        assert self.key is not None
        return hmac.new(self.key.encode(), f"loradock-console:{text}".encode(), hashlib.sha256).hexdigest()

    def token_ok(self, token: str) -> bool:
        return self.key is not None and hmac.compare_digest(token.strip().encode(), self.key.encode())

    def new_session(self) -> str:
        issued = f"{int(time.time())}-{secrets.token_hex(16)}"
        return f"{issued}.{self._sign(issued)}"

    def session_ok(self, value: str | None) -> bool:
        if self.key is None or not value or "." not in value:
            return False
        issued, _, signature = value.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(issued).encode()):
            return False
        try:
            return time.time() - int(issued.split("-", 1)[0]) < SESSION_TTL_S
        except ValueError:
            return False

    def authenticated(self, request: Request) -> bool:
        """True when no key is set, or the request carries the key (header) or a valid session."""
        if self.key is None:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.token_ok(token):
            return True
        return self.session_ok(request.cookies.get(SESSION_COOKIE))

    def check_host(self, request: Request) -> bool:
        """A server bound to loopback answers only to loopback names (defeats DNS rebinding)."""
        server = request.scope.get("server")
        if not server or not is_loopback(str(server[0])):
            return True
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return is_loopback(name) or name in _LOOPBACK_NAMES


def csrf_token(request: Request) -> str:
    """This browser's CSRF token (made now if it has none; the response sets the cookie)."""
    existing = request.cookies.get(CSRF_COOKIE, "")
    if len(existing) == 64 and all(c in "0123456789abcdef" for c in existing):
        return existing
    token = getattr(request.state, "csrf_new", None)
    if token is None:
        token = secrets.token_hex(32)
        request.state.csrf_new = token
    return token


def csrf_ok(request: Request, submitted: str) -> bool:
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return bool(cookie) and bool(submitted) and hmac.compare_digest(cookie.encode(), submitted.encode())

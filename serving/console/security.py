"""The console's access policy: who may read, who may write, and the headers every page carries.

Policy (the same as the API's `--api-key-env`):
- no key configured: every page is readable by whoever reaches the port (127.0.0.1 by default)
  and the console is read-only; alias moves are refused with a hint;
- a key configured: every page needs it, either as `Authorization: Bearer KEY` or through a
  login form that sets a signed, HttpOnly, SameSite=Strict session cookie; alias moves need
  that too, plus a CSRF token and a confirmation step.

CSRF (issue 22, item 4). Cookies are not separated by port, so a page on any other
`127.0.0.1:PORT` can set our cookies: a token that is merely "cookie equals form field" proves
nothing. So:
- the token is HMAC(server key, session): the key is random per process and never leaves it, so
  no other origin can compute a token, whatever cookies it plants. Before sign-in (the login form)
  the "session" is a random pre-session cookie, which only a form served by us pairs with a token;
- every POST is refused when `Sec-Fetch-Site` is present and not `same-origin` (or `none`, a
  user's own navigation); without it, when `Origin` is present and its host:port is not the
  request's `Host` (other ports are other origins) or is `null`. A POST with neither header is not from a browser that
  could be sent across origins (every current browser sends `Origin` on POST), so it is judged
  by the token alone: that is what curl and scripts send.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import Request

from ..guard import read_api_key

SESSION_COOKIE = "loradock_session"
CSRF_COOKIE = "loradock_csrf"
SESSION_TTL_S = 12 * 3600

# No inline script or style anywhere in the console, so scripts and styles can be 'self' only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` on our own form
    # posts, which the origin check must refuse; other origins still get no referrer at all.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
# What a same-origin form POST says in Sec-Fetch-Site; "none" is the user's own navigation.
_SAME_ORIGIN_FETCH = {"same-origin", "none"}


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
    # Signs CSRF tokens; random per process, so a restart makes open forms stale (reload the page).
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False, compare=False)

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

    # -- CSRF ------------------------------------------------------------------------

    def _csrf_basis(self, request: Request) -> str:
        """What the token is bound to: the signed-in session, else this browser's pre-session cookie."""
        session = request.cookies.get(SESSION_COOKIE)
        if self.session_ok(session):
            return f"session:{session}"
        nonce = request.cookies.get(CSRF_COOKIE, "")
        if not (len(nonce) == 64 and all(c in "0123456789abcdef" for c in nonce)):
            nonce = getattr(request.state, "csrf_new", None) or secrets.token_hex(32)
            request.state.csrf_new = nonce  # the response sets it (Console.finish)
        return f"pre:{nonce}"

    def csrf_token(self, request: Request) -> str:
        """The token forms of this page carry: HMAC(server key, session or pre-session)."""
        return hmac.new(self.secret, self._csrf_basis(request).encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request, submitted: str) -> bool:
        return bool(submitted) and hmac.compare_digest(
            submitted.encode("utf-8", "replace"), self.csrf_token(request).encode()
        )

    @staticmethod
    def same_origin(request: Request) -> bool:
        """False for a POST a browser says comes from another site or another origin (port included)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None:  # the browser's own verdict, when it gives one, is the one to trust
            return site.lower() in _SAME_ORIGIN_FETCH
        origin = request.headers.get("origin")
        if origin is None:
            return True
        return bool(origin != "null" and urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower())

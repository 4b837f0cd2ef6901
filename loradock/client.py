"""`loradock.Client`: a running `adapters serve` from Python, over plain httpx.

    client = loradock.Client("http://127.0.0.1:8000", token="...")
    client.classify("tickets", "I was charged twice")          # -> Classification
    client.classify("tickets@2", ["one text", "another"])      # -> list[Classification]
    client.models(); client.domains(); client.health()

Every error the server answers becomes one typed exception (see `ClientError`);
this module imports neither torch nor the rest of loradock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import httpx


class ClientError(Exception):
    """The server refused the request (or could not be reached). `status` is the HTTP code (0: no answer)."""

    def __init__(self, message: str, status: int = 0, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body or {}


class AuthError(ClientError, PermissionError):
    """401: missing or wrong token."""


class NotFoundError(ClientError, LookupError):
    """404: the domain is not served, the version or alias does not exist, or no such route."""


class InvalidRequestError(ClientError, ValueError):
    """400/422: the request is malformed; `field` names the field at fault when known."""

    @property
    def field(self) -> str | None:
        return self.body.get("field")


class TooLargeError(ClientError, ValueError):
    """413: too many inputs, a text too long, or a body over the server's limit."""


class ConflictError(ClientError):
    """409: the version exists but cannot be served here (another base, unverified base)."""


class OverloadedError(ClientError):
    """503: the server's queue is full; retry after `retry_after` seconds."""

    def __init__(
        self, message: str, status: int = 503, body: dict[str, Any] | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, status, body)
        self.retry_after = retry_after


class ServerError(ClientError):
    """5xx other than 503: see the server's log."""


class UnreachableError(ClientError, ConnectionError):
    """No answer from the server: is `adapters serve` running at that URL?"""


_BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidRequestError,
    401: AuthError,
    404: NotFoundError,
    405: NotFoundError,
    409: ConflictError,
    413: TooLargeError,
    422: InvalidRequestError,
}


@dataclass(frozen=True)
class Classification:
    """One text's answer: the best label, every label's score, and the exact version that answered."""

    label: str
    score: float
    scores: dict[str, float]
    domain: str
    version: str
    sha256: str


@dataclass(frozen=True)
class ModelInfo:
    """One served domain as `GET /v1/models` lists it."""

    id: str
    version: str
    sha256: str
    base_model: str
    follows: str
    labels: list[str] = field(default_factory=list)
    parent_version: str | None = None


class Client:
    """A loradock server at `url`; `token` is the server's `--api-key-env` key (None when it has none)."""

    def __init__(
        self, url: str, token: str | None = None, timeout: float = 30.0, http: httpx.Client | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        # `http`: bring your own httpx.Client (proxies, retries, or a test transport).
        self._http = http or httpx.Client(base_url=self.url, timeout=timeout)
        self._headers = headers

    # -- calls ------------------------------------------------------------------------

    # A str is also a Sequence[str]; the str overload comes first, so it wins.
    @overload
    def classify(self, model: str, inputs: str, top_k: int | None = None) -> Classification: ...  # type: ignore[overload-overlap]

    @overload
    def classify(self, model: str, inputs: Sequence[str], top_k: int | None = None) -> list[Classification]: ...

    def classify(
        self, model: str, inputs: str | Sequence[str], top_k: int | None = None
    ) -> Classification | list[Classification]:
        """Labels for one text (one Classification) or many (a list); `model` is DOMAIN, DOMAIN@N or DOMAIN@ALIAS."""
        one = isinstance(inputs, str)
        body: dict[str, Any] = {"model": model, "input": inputs if one else list(inputs)}
        if top_k is not None:
            body["top_k"] = top_k
        answer = self._call("POST", "/v1/classify", json=body)
        out = [
            Classification(
                label=row[0]["label"],
                score=row[0]["score"],
                scores={item["label"]: item["score"] for item in row},
                domain=answer["domain"],
                version=answer["version"],
                sha256=answer["sha256"],
            )
            for row in answer["results"]
        ]
        return out[0] if one else out

    def models(self) -> list[ModelInfo]:
        """What the server serves: one entry per domain, with version, content hash and base."""
        return [
            ModelInfo(
                id=m["id"],
                version=m["version"],
                sha256=m["sha256"],
                base_model=m["base_model"],
                follows=m["follows"],
                labels=list(m.get("labels", [])),
                parent_version=m.get("parent_version"),
            )
            for m in self._call("GET", "/v1/models")["data"]
        ]

    def domains(self) -> dict[str, Any]:
        """`GET /v1/domains`: the base, the device, and per domain its version, tier and counts."""
        return dict(self._call("GET", "/v1/domains"))

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "/health"))

    # -- plumbing ---------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, headers=self._headers, **kwargs)
        except httpx.TransportError as exc:
            raise UnreachableError(
                f"No answer from {self.url}{path} ({exc}); is 'adapters serve' running there?"
            ) from exc
        if response.status_code < 400:
            return response.json()
        raise _error_from(response)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


def _error_from(response: httpx.Response) -> ClientError:
    """The server's `{"error": ...}` envelope as a typed exception."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("error") or f"HTTP {response.status_code} from {response.request.url}")
    status = response.status_code
    if status == 503:
        retry = response.headers.get("retry-after")
        return OverloadedError(message, status, body, float(retry) if retry and retry.isdigit() else None)
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else ClientError)
    return cls(message, status, body)

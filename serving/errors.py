"""Every error the server raises; serving/statuses.py maps each to one HTTP status."""

from __future__ import annotations

from loradock.adapters.errors import AdaptersError


class ServingError(AdaptersError):
    """Base class: a serving operation was refused."""


class ServeConfigError(ServingError, ValueError):
    """A server configuration that cannot work; nothing was started."""


class MixedBasesError(ServeConfigError):
    """Domains asked for together were trained on different bases; one server runs one base."""

    def __init__(self, groups: dict[str, list[str]]) -> None:
        self.groups = groups
        split = "; ".join(f"{', '.join(refs)} on {base}" for base, refs in groups.items())
        commands = " and ".join(
            f"'adapters serve --domains {','.join(refs)} --port {8000 + i}'" for i, refs in enumerate(groups.values())
        )
        super().__init__(
            f"These versions are on {len(groups)} different bases ({split}); one server serves one "
            f"base: run one server per base, e.g. {commands}."
        )


class AdapterLoadError(ServingError):
    """An adapter that cannot be served on this base (wrong base, unsupported PEFT feature)."""


class UnverifiedBaseError(AdapterLoadError):
    """A version with no base fingerprint: nothing proves it was trained on this server's base."""


class UnknownServedDomainError(ServingError, KeyError):
    """A request for a domain this server does not serve."""

    def __init__(self, domain: str, served: list[str]) -> None:
        self.domain = domain
        self.served = served
        super().__init__(
            f"Domain {domain!r} is not served here (served: {', '.join(served) or 'none'}); "
            "start the server with --domains including it."
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class RequestTooLargeError(ServingError):
    """Too many inputs, or an input with too many characters."""


class OverloadedError(ServingError):
    """The queue is full; the client should retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class AllPinnedError(OverloadedError):
    """No device slot can be freed: every resident adapter is pinned or in use."""


class ShuttingDownError(OverloadedError):
    """The server is stopping and takes no new work."""

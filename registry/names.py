"""Names and refs: `medical`, `medical@3`, `medical@production`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidNameError, InvalidRefError

# Names become path parts on the Hub and in exports, so they are kept to a
# portable alphabet: no separators, no dots (no `..`), no leading dash.
# Matched with fullmatch: `$` alone would also accept a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
LATEST = "latest"
# Version numbers are SQLite integers; a bigger one is refused before any query
# (sqlite3 raises OverflowError past 2**63 - 1).
MAX_NUMBER = 2**63 - 1


def check_name(value: object, what: str = "name") -> str:
    """Return `value` if it is a safe domain or alias name, else raise."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidNameError(
            f"Invalid {what} {value!r}: use 1-64 letters, digits, '-' or '_', "
            "starting with a letter or digit (no '/', '.', spaces)."
        )
    return value


def check_alias(value: str) -> str:
    check_name(value, "alias")
    if value.isdigit():
        raise InvalidNameError(
            f"Invalid alias {value!r}: an all-digit alias would read as a version number. "
            "Pick a word such as 'production'."
        )
    return value


def check_number(value: int | str, text: str | None = None) -> int:
    """A version number in 1..MAX_NUMBER, from an int or a string of ASCII digits."""
    shown = text if text is not None else value
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise InvalidRefError(f"Malformed version number {shown!r}: write digits only, e.g. 3.")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_NUMBER:
        raise InvalidRefError(
            f"Malformed ref {shown!r}: version numbers run from 1 to {MAX_NUMBER}. See what exists with: adapters list"
        )
    return value


@dataclass(frozen=True)
class Ref:
    """A parsed `DOMAIN@REF`: `number` for `@3`, `alias` for `@production`."""

    domain: str
    number: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        return f"{self.domain}@{self.number if self.number is not None else self.alias}"


def parse_ref(text: str, default_alias: str = LATEST) -> Ref:
    """Parse `DOMAIN`, `DOMAIN@N` or `DOMAIN@ALIAS`; a bare domain means `@latest`."""
    if not isinstance(text, str) or text.count("@") > 1 or text.endswith("@"):
        raise InvalidRefError(
            f"Malformed ref {text!r}: write DOMAIN, DOMAIN@N or DOMAIN@ALIAS, e.g. medical@3 or medical@production."
        )
    domain, _, ref = text.partition("@")
    try:
        check_name(domain, "domain")
        ref = ref or default_alias
        if ref.isascii() and ref.isdigit():
            return Ref(domain, number=check_number(ref, text))
        return Ref(domain, alias=check_name(ref, "alias"))
    except InvalidNameError as exc:
        raise InvalidRefError(f"Malformed ref {text!r}: {exc}") from None

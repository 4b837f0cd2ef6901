"""Shell completion of domains and DOMAIN@REF from the registry.

Callbacks for click's `shell_complete=`; they run on every <TAB>, so they read
the index only (no torch, nothing created) and never fail: a broken or missing
registry completes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

import click
from click.shell_completion import CompletionItem

log = logging.getLogger(__name__)


def _registry() -> Any:
    from loradock.registry import Registry
    from loradock.registry.home import default_home

    home = default_home()
    # Completing must not create a home as a side effect.
    return Registry(home) if (home / "registry.db").is_file() else None


def domain_names() -> list[str]:
    reg = _registry()
    if reg is None:
        from loradock.registry import PRESETS

        return sorted(PRESETS)
    with reg:
        return reg.domain_names()


def refs(prefix: str) -> list[str]:
    """DOMAIN@N, DOMAIN@latest and DOMAIN@ALIAS for the domains `prefix` can still name."""
    reg = _registry()
    if reg is None:
        return []
    wanted = prefix.partition("@")[0]
    out: list[str] = []
    with reg:
        for domain in reg.domain_names():
            if not domain.startswith(wanted) or ("@" in prefix and domain != wanted):
                continue
            versions = reg.versions(domain)
            if not versions:
                continue
            out.append(f"{domain}@latest")
            out.extend(f"{domain}@{a['name']}" for a in reg.aliases(domain))
            out.extend(v.ref for v in versions)
    return out


def complete_domain(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        return [CompletionItem(d) for d in domain_names() if d.startswith(incomplete)]
    except Exception as exc:
        log.debug("domain completion failed: %s", exc)
        return []


def complete_ref(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        return [CompletionItem(r) for r in refs(incomplete) if r.startswith(incomplete)]
    except Exception as exc:
        log.debug("ref completion failed: %s", exc)
        return []

"""`target_modules` matched the way PEFT matches it, in bounded time.

PEFT reads a string `target_modules` as a regular expression and keeps a module when
`re.fullmatch(target_modules, name)`. Python's `re` backtracks and has no timeout:
`(a+)+b` against 28 `a`s takes seconds and every further `a` doubles that. Pattern
and names come from an untrusted adapter_config.json and safetensors header, so
before matching anything this module bounds both:

* names: at most MAX_MODULE_NAME characters (real ones are under 100);
* the pattern: at most MAX_PATTERN characters, no backreferences or conditionals,
  and no repeat over something that can itself match in more than one way
  (`(a+)+`, `(a|ab)*`, `(a?){30}`): that nesting is what makes backtracking
  exponential, and PEFT's own patterns never need it;
* what is left is polynomial: `match_cost` bounds the ways the engine can split a
  name (a product over a concatenation, a sum over alternatives, n+1 for a repeat
  over a name of n characters), and the sum over all names must stay under
  MATCH_BUDGET, a fraction of a second of matching at worst.

Why a structural check rather than a timeout: `re` has none, a thread running a
match cannot be interrupted, and a subprocess per register is heavy. A refusal
here also protects later readers: PEFT runs the same pattern over the base
model's module names whenever the adapter is loaded or served. The parse tree comes
from `re._parser` (`sre_parse` before Python 3.11), the stdlib's own parser and the
only way to see a pattern the way `re` will run it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

try:
    from re import _parser as sre  # type: ignore[attr-defined]
except ImportError:  # Python 3.10
    import sre_parse as sre

MAX_MODULE_NAME = 256
MAX_PATTERN = 1024
# CPython's re tries 2**24 splits (`\w*\w*\w*x` against 256 characters) in 10 to 35 ms,
# so matching within the budget takes a quarter of a second at worst (measured on a
# busy 2-core machine). A real pattern over real names uses a small part of it: PEFT's
# `.*decoder.*(SelfAttention|EncDecAttention).*(q|v)$` costs ~1e6 per 60-character name.
MATCH_BUDGET = 1 << 27

_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT} | ({sre.POSSESSIVE_REPEAT} if hasattr(sre, "POSSESSIVE_REPEAT") else set())
_SINGLE = {sre.LITERAL, sre.NOT_LITERAL, sre.ANY, sre.IN, sre.AT, sre.CATEGORY}
_ATOMIC = getattr(sre, "ATOMIC_GROUP", None)


class PatternError(ValueError):
    """A target_modules pattern refused before matching; the message states the rule."""


def parse(pattern: str) -> Any:
    """The parse tree of a target_modules regex; PatternError if it is too long, invalid or nests repeats."""
    if len(pattern) > MAX_PATTERN:
        raise PatternError(
            f"it is {len(pattern)} characters long, over the {MAX_PATTERN} allowed; list the module names instead"
        )
    try:
        tree = sre.parse(pattern)
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise PatternError(f"it is not a valid regular expression ({exc})") from None
    match_cost(tree, 0)  # refuses nesting and references whatever the names
    return tree


def _choiceless(sub: Any) -> bool:
    """True when `sub` can match a given text in at most one way (no alternatives, no open repeats)."""
    for op, av in sub:
        if op in _SINGLE:
            continue
        if op == sre.SUBPATTERN and _choiceless(av[-1]):
            continue
        if op in _REPEATS and av[0] == av[1] and _choiceless(av[2]):
            continue
        return False
    return True


def match_cost(sub: Any, n: int) -> int:
    """An upper bound on the splits `re` can try when matching `sub` against n characters."""
    total = 1
    for op, av in sub:
        if op in _SINGLE:
            ways = 1
        elif op == sre.BRANCH:
            ways = sum(match_cost(branch, n) for branch in av[1])
        elif op == sre.SUBPATTERN:
            ways = match_cost(av[-1], n)
        elif op == _ATOMIC:
            ways = match_cost(av, n)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            ways = match_cost(av[1], n)
        elif op in _REPEATS:
            ways = _repeat_cost(av, n)
        else:  # backreferences, conditionals: nothing PEFT patterns use, and not bounded
            raise PatternError(
                f"it uses a backreference or conditional ({op}), which target_modules patterns "
                "do not need; list the module names instead"
            )
        total *= ways
    return total


def _repeat_cost(av: Any, n: int) -> int:
    low, high, body = av
    if high == 0:
        return 1
    if high == 1:  # `x?` or `x{1}`: no loop, the body's ways (plus skipping it)
        return match_cost(body, n) + (0 if low else 1)
    if not _choiceless(body):
        raise PatternError(
            "it repeats a part that can itself match in several ways (like '(a+)+' or '(a|b)*'), "
            "which makes matching take exponential time; write it without nested repeats, "
            r"e.g. '.*\.(q_proj|v_proj)', or list the module names"
        )
    if low == high:
        return 1
    return min(high, n) - min(low, n) + 1


def check_lengths(names: Iterable[str]) -> None:
    """Refuse module names over MAX_MODULE_NAME characters (they come from the safetensors keys)."""
    for name in names:
        if len(name) > MAX_MODULE_NAME:
            raise PatternError(
                f"LoRA weights on module {name[:60]!r}..., a name {len(name)} characters long, over "
                f"the {MAX_MODULE_NAME} allowed; no real model has such a module"
            )


def check_cost(tree: Any, names: Iterable[str]) -> None:
    """Refuse a parsed pattern whose matching against `names` could exceed MATCH_BUDGET."""
    by_length: dict[int, int] = {}
    for name in names:
        by_length[len(name)] = by_length.get(len(name), 0) + 1
    cost = sum(count * match_cost(tree, length) for length, count in by_length.items())
    if cost > MATCH_BUDGET:
        raise PatternError(
            f"matching it against the {sum(by_length.values())} module names could take about "
            f"{cost:.1e} steps, over the {MATCH_BUDGET:.1e} allowed; use fewer open repeats such as "
            r"'.*' (e.g. '.*\.(q_proj|v_proj)'), or list the module names"
        )


def matches(pattern: str, name: str) -> bool:
    """PEFT's rule for a string target_modules; call only after `parse`, `check_lengths` and `check_cost`."""
    return re.fullmatch(pattern, name) is not None

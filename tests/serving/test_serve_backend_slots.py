"""serving/backends/base.adapter_slots: how both backends give each row of a mixed batch its adapter's slot."""

from __future__ import annotations

from types import SimpleNamespace

from loradock.serving.backends.base import adapter_slots


def test_each_adapter_is_stacked_once_in_first_seen_order() -> None:
    a, b = SimpleNamespace(sha256="aa"), SimpleNamespace(sha256="bb")
    slots, unique = adapter_slots([b, a, b, SimpleNamespace(sha256="bb")])
    assert unique == [b, a] and slots == {"bb": 0, "aa": 1}

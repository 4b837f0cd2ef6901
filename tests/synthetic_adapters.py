"""Tiny PEFT-layout LoRA folders for registry tests that need the file format, not a
real model; the writer lives in bench/fixtures.py so the benches need not import tests/."""

from bench.fixtures import write_adapter

__all__ = ["write_adapter"]

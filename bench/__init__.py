"""Benches: side-by-side measurements, each runnable as `python bench/NAME.py` (see BENCHMARKS.md)."""

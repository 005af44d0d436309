"""Benchmarks for Shelfkeeper (`python -m bench`); see docs/benchmarks.md."""

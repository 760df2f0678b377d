"""Benchmarks and measured runs (``python -m bench.NAME``); not part of the installed package."""

"""Benchmarks, each against a baseline measured in the same run. Run all: ``python -m bench``."""

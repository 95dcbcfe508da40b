"""Speed and memory benchmarks, each against a baseline measured in the same run.

``python -m bench`` runs every ``bench_*.py`` module's ``main()``.
"""

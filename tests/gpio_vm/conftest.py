"""Prints the VM's figures (boot time, flip -> commit p50/p99, lost edges) at the end."""
from __future__ import annotations

from typing import Any, List

import pytest

SUMMARY_KEY = pytest.StashKey[List[str]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash.get(SUMMARY_KEY, []):
        terminalreporter.write_line(line)

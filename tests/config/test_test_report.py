"""test_report: (docs/spec.md §13.3): defaults, off, and every problem with its line."""
from __future__ import annotations

import pytest

from agent.rules.testreport import TestReportSettings
from tests.config.test_model import BASE, ok, problems


def test_on_by_default_daily_at_ten() -> None:
    assert ok(BASE).test_report == TestReportSettings("10:00", 1)


def test_false_turns_it_off_and_true_keeps_the_defaults() -> None:
    assert ok(BASE + "test_report: false\n").test_report is None
    assert ok(BASE + "test_report: true\n").test_report == TestReportSettings()


def test_both_keys() -> None:
    config = ok(BASE + 'test_report: {at: "07:45", every_days: 30}\n')
    assert config.test_report == TestReportSettings("07:45", 30)


@pytest.mark.parametrize("text, line, col, path, phrase", [
    ('test_report: {at: "25:00"}\n', 7, 19, "test_report.at", "not a time of day"),
    ("test_report:\n  every_days: 0\n", 8, 15, "test_report.every_days", "least allowed is 1"),
    ("test_report:\n  every_days: 366\n", 8, 15, "test_report.every_days", "365"),
    ("test_report: {at: \"10:00\", every_day: 2}\n", 7, 28, "test_report.every_day",
     "did you mean 'every_days'?"),
    ("test_report: sometimes\n", 7, 14, "test_report", "true or false"),
    ("test_reports: false\n", 7, 1, "test_reports", "did you mean 'test_report'?"),
])
def test_problems_have_file_line_col(text: str, line: int, col: int, path: str, phrase: str) -> None:
    [found] = problems(BASE + text)
    assert (found.line, found.col, found.field_path) == (line, col, path), str(found)
    assert phrase in found.message and str(found).startswith(f"config.yaml:{line}:{col}: {path}: ")

"""When the periodic test report is due (agent/rules/testreport.py, docs/spec.md §13.3)."""
from __future__ import annotations

import ast
from datetime import datetime, timezone
from pathlib import Path
from typing import List

import pytest
from zoneinfo import ZoneInfo

from agent.rules.testreport import (TestReportSchedule, TestReportSettings, device_offset_s)

BERLIN = ZoneInfo("Europe/Berlin")


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def run(schedule: TestReportSchedule, start_wall: float, days: float) -> List[str]:
    """Drive the schedule like the loop: wake at each next_deadline (virtual clock)."""
    now, offset = 0.0, start_wall
    fired: List[str] = []
    assert not schedule.advance(now, now + offset)
    end = days * 86400
    while True:
        due = schedule.next_deadline()
        assert due is not None and due > now
        if due > end:
            return fired
        now = due
        if schedule.advance(now, now + offset):
            fired.append(iso(now + offset))


def test_offset_is_fixed_per_device_and_spread() -> None:
    assert device_offset_s("gw-0001") == device_offset_s("gw-0001")
    offsets = {device_offset_s(f"gw-{n:04d}") for n in range(200)}
    assert all(0 <= o < 3600 for o in offsets) and len(offsets) > 150


def test_daily_at_ten_utc_plus_offset() -> None:
    s = TestReportSchedule(TestReportSettings("10:00", 1), timezone.utc, 125)
    assert run(s, utc("2026-03-01T09:00:00"), 3) == [
        "2026-03-01T10:02:05", "2026-03-02T10:02:05", "2026-03-03T10:02:05"]


def test_a_start_after_todays_time_waits_for_tomorrow() -> None:
    s = TestReportSchedule(TestReportSettings("10:00", 1), timezone.utc, 0)
    assert run(s, utc("2026-03-01T10:00:01"), 1.5) == ["2026-03-02T10:00:00"]


def test_dst_spring_forward_keeps_local_ten_oclock() -> None:
    # Berlin goes from UTC+1 to UTC+2 on 2026-03-29: 10:00 local is 09:00 then 08:00 UTC
    s = TestReportSchedule(TestReportSettings("10:00", 1), BERLIN, 0)
    assert run(s, utc("2026-03-27T12:00:00"), 3) == [
        "2026-03-28T09:00:00", "2026-03-29T08:00:00", "2026-03-30T08:00:00"]


def test_dst_skipped_and_repeated_times() -> None:
    s = TestReportSchedule(TestReportSettings("02:30", 1), BERLIN, 60)
    # 02:30 does not exist on 2026-03-29: taken at the jump (03:00 CEST = 01:00 UTC)
    assert run(s, utc("2026-03-28T12:00:00"), 1) == ["2026-03-29T01:01:00"]
    s = TestReportSchedule(TestReportSettings("02:30", 1), BERLIN, 60)
    # 02:30 happens twice on 2026-10-25: the first pass (CEST, 00:30 UTC), once
    assert run(s, utc("2026-10-24T12:00:00"), 1.5) == ["2026-10-25T00:31:00"]


def test_every_seven_days_on_fixed_days() -> None:
    s = TestReportSchedule(TestReportSettings("10:00", 7), timezone.utc, 0)
    fired = run(s, utc("2026-03-01T00:00:00"), 21)
    assert len(fired) == 3
    days = [datetime.fromisoformat(f).date().toordinal() for f in fired]
    assert all(d % 7 == 0 for d in days) and days[1] - days[0] == 7


def test_a_clock_jump_past_several_reports_sends_one() -> None:
    s = TestReportSchedule(TestReportSettings("10:00", 1), timezone.utc, 0)
    assert not s.advance(0.0, utc("2026-03-01T09:00:00"))
    assert s.advance(10.0, utc("2026-03-05T12:00:00"))       # the clock set right: one report
    assert s.due_wall == utc("2026-03-06T10:00:00")
    assert not s.advance(20.0, utc("2026-03-05T12:00:10"))


@pytest.mark.parametrize("at, every", [("25:00", 1), ("10:0", 1), (1000, 1), ("10:00", 0),
                                       ("10:00", 366), ("10:00", True)])
def test_settings_validate(at: object, every: object) -> None:
    with pytest.raises(ValueError, match="test_report"):
        TestReportSettings(at, every)  # type: ignore[arg-type]


def test_the_module_is_sans_io() -> None:
    path = Path(__file__).parents[2] / "agent" / "rules" / "testreport.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    imported |= {(n.module or "").split(".")[0] for n in ast.walk(tree)
                 if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert not imported & {"time", "threading", "socket", "paho", "gpiozero", "sqlite3", "jwt",
                           "os", "zoneinfo"}

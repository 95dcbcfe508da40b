"""Maintenance mode (docs/spec.md §13.4): the period (virtual clock), its file, the switches."""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest

from agent.alarms.maintenance import ENDED, STARTED, Maintenance, parse_maintenance_args
from agent.app.maintenance import FILE_NAME, MaintenanceMode
from drivers.tamper import TamperSwitch

WALL0 = 1_764_339_471.0   # 2025-11-28T14:17:51Z


def test_start_end_and_restart_from_now() -> None:
    m = Maintenance()
    assert m.command(0, 5.0, WALL0) == []                 # none running: nothing sent
    [started] = m.command(30, 10.0, WALL0)
    assert (started.type, started.at, started.critical, started.sensor) == (STARTED, 10.0, False, "agent")
    assert started.data["until"] == "2025-11-28T14:47:51.000Z"
    assert m.next_deadline() == 10.0 + 1800
    [again] = m.command(10, 100.0, WALL0 + 90)            # restarted from now, not added
    assert m.next_deadline() == 700.0 and again.data["until"] == "2025-11-28T14:29:21.000Z"
    assert m.advance(699.9) == []
    [ended] = m.advance(750.0)
    assert (ended.type, ended.at, ended.data["by"]) == (ENDED, 700.0, "expiry")
    assert not m.active and m.next_deadline() is None and m.advance(800.0) == []


def test_zero_ends_a_running_period() -> None:
    m = Maintenance()
    m.command(240, 0.0, WALL0)
    [ended] = m.command(0, 60.0, WALL0 + 60)
    assert (ended.type, ended.data["by"]) == (ENDED, "command") and not m.active


@pytest.mark.parametrize("args", [{"minutes": 241}, {"minutes": -1}, {"minutes": 1.5},
                                  {"minutes": True}, {}, {"minutes": 5, "extra": 1},
                                  {"minutes": "5"}, {"minutes": None}])
def test_bad_args(args: Dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="0-240"):
        parse_maintenance_args(args)


@pytest.mark.parametrize("minutes", [0, 1, 240])
def test_good_args(minutes: int) -> None:
    assert parse_maintenance_args({"minutes": minutes}) == minutes


def test_restore_keeps_the_wall_end_and_a_stale_clock_never_lengthens_it() -> None:
    m = Maintenance()
    m.command(60, 100.0, WALL0)
    data = json.loads(json.dumps(m.to_data(now=400.0, wall=WALL0 + 300)))
    # restarted 10 minutes later by the wall clock, monotonic clock from 0 again
    later = Maintenance.restore(data, now=0.0, wall=WALL0 + 900)
    assert later.next_deadline() == pytest.approx(3600 - 900)
    # a Pi without RTC boots with a clock from a day ago: the saved time counts instead
    stale = Maintenance.restore(data, now=0.0, wall=WALL0 - 86400)
    assert stale.next_deadline() == pytest.approx(3600 - 300)
    # a clock far ahead: over at once, reported by the first advance
    ahead = Maintenance.restore(data, now=0.0, wall=WALL0 + 86400)
    assert [e.type for e in ahead.advance(0.0)] == [ENDED]


@pytest.mark.parametrize("data", [{}, {"v": 2, "saved": 1.0, "until": None},
                                  {"v": 1, "saved": "x", "until": None},
                                  {"v": 1, "saved": 1.0, "until": True}])
def test_restore_refuses_bad_records(data: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Maintenance.restore(data, now=0.0, wall=WALL0)


class Clocks:
    def __init__(self) -> None:
        self.now, self.wall = 0.0, WALL0

    def step(self, s: float) -> None:
        self.now += s
        self.wall += s


def open_box(switch: TamperSwitch, clocks: Clocks) -> List[Any]:
    out = switch.edge(True, clocks.now)
    clocks.step(0.3)
    return out + switch.advance(clocks.now)


def test_tamper_is_normal_during_maintenance_and_critical_after_expiry(tmp_path: Path) -> None:
    clocks = Clocks()
    switch = TamperSwitch("lid")
    mode = MaintenanceMode(tmp_path, [switch], clock=lambda: clocks.now, wall=lambda: clocks.wall)
    switch.start(False, clocks.now)
    mode.command({"minutes": 1}, clocks.now)
    [opened] = open_box(switch, clocks)
    assert opened.type == "tamper.opened" and not opened.critical and opened.data["maintenance"]
    clocks.step(60)
    out = mode.advance(clocks.now)
    # still open when the period ends: reported again, critical (an alarm now)
    assert [(e.type, e.critical) for e in out] == [(ENDED, False), ("tamper.opened", True)]
    switch.edge(False, clocks.now)
    clocks.step(1.1)
    switch.advance(clocks.now)
    [again] = open_box(switch, clocks)
    assert again.critical and "maintenance" not in again.data


def test_the_period_survives_a_restart(tmp_path: Path) -> None:
    clocks = Clocks()
    mode = MaintenanceMode(tmp_path, [], clock=lambda: clocks.now, wall=lambda: clocks.wall)
    [started] = mode.command({"minutes": 10}, clocks.now)
    assert json.loads((tmp_path / FILE_NAME).read_text())["until"] == WALL0 + 600
    clocks.step(120)
    clocks.now = 5.0                                     # a new boot: the monotonic clock restarts
    switch = TamperSwitch("lid")
    again = MaintenanceMode(tmp_path, [switch], clock=lambda: clocks.now, wall=lambda: clocks.wall)
    assert again.active and switch.maintenance
    assert again.next_deadline() == pytest.approx(5.0 + 480)
    [ended] = again.advance(5.0 + 480)
    assert ended.data["until"] == started.data["until"] and not switch.maintenance
    assert json.loads((tmp_path / FILE_NAME).read_text())["until"] is None


def test_a_damaged_file_means_no_period(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text("{not json")
    mode = MaintenanceMode(tmp_path, [], clock=lambda: 0.0, wall=lambda: WALL0)
    assert not mode.active


def test_the_core_is_sans_io() -> None:
    source = (Path(__file__).resolve().parents[2] / "agent" / "alarms" / "maintenance.py").read_text()
    tree = ast.parse(source)
    imported = {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for a in n.names}
    assert imported <= {"__future__", "dataclasses", "datetime", "typing"}

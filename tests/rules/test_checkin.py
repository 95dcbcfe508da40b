"""Inactivity mode check_in (agent/rules/checkin.py) on a virtual clock."""
from __future__ import annotations

import pytest

from agent.rules.checkin import CheckInRule
from agent.rules.inactivity import InactivityRuleSettings
from tests.rules.support import BERLIN, MINUTE, MOTION, OPENED, Clock, epoch, local, run_until, types


def check_in(from_: str = "07:00", to: str = "11:00", warn_min: float = 0) -> CheckInRule:
    return CheckInRule(InactivityRuleSettings(mode="check_in", from_=from_, to=to,
                                              warn_min=warn_min), BERLIN)


def started(rule: CheckInRule, wall: float) -> Clock:
    clock = Clock(wall)
    assert rule.advance(*clock.args()) == []
    return clock


def when(clock: Clock, events: list) -> list:
    return [(e.type, local(clock.wall_of(e.at))) for e in events]


def test_no_activity_by_to_raises_at_to() -> None:
    rule = check_in()
    clock = started(rule, epoch(2026, 11, 28, 6, 0))
    out = run_until(rule, clock, epoch(2026, 11, 28, 12, 0))
    assert when(clock, out) == [("care.inactivity", "2026-11-28T11:00:00+01:00")]
    assert out[0].critical and out[0].data["mode"] == "check_in"
    assert out[0].data["window"] == "07:00-11:00" and out[0].data["last_activity"] is None


def test_activity_inside_the_window_is_the_check_in_each_day() -> None:
    rule = check_in()
    clock = started(rule, epoch(2026, 11, 28, 6, 0))
    run_until(rule, clock, epoch(2026, 11, 28, 9, 0))
    assert rule.observe(MOTION, *clock.args()) == []
    assert run_until(rule, clock, epoch(2026, 11, 29, 10, 0)) == []
    assert when(clock, run_until(rule, clock, epoch(2026, 11, 29, 12, 0))) == [
        ("care.inactivity", "2026-11-29T11:00:00+01:00")]


def test_activity_before_from_does_not_count() -> None:
    rule = check_in()
    clock = started(rule, epoch(2026, 11, 28, 5, 0))
    run_until(rule, clock, epoch(2026, 11, 28, 6, 59))
    assert rule.observe(OPENED, *clock.args()) == []
    assert types(run_until(rule, clock, epoch(2026, 11, 28, 12, 0))) == ["care.inactivity"]


def test_warning_starts_warn_min_before_to_and_a_press_cancels_it() -> None:
    rule = check_in(warn_min=10)
    clock = started(rule, epoch(2026, 11, 28, 6, 0))
    out = run_until(rule, clock, epoch(2026, 11, 28, 10, 55))
    assert when(clock, out) == [("care.inactivity_warning", "2026-11-28T10:50:00+01:00")]
    assert not out[0].critical and rule.warning
    [cancel] = rule.observe(MOTION, *clock.args())
    assert cancel.type == "care.inactivity_cancelled" and cancel.data["warned_s"] == 5 * MINUTE
    assert run_until(rule, clock, epoch(2026, 11, 28, 12, 0)) == []


def test_warning_not_cancelled_then_inactivity_at_to() -> None:
    rule = check_in(warn_min=10)
    clock = started(rule, epoch(2026, 11, 28, 6, 0))
    out = run_until(rule, clock, epoch(2026, 11, 28, 12, 0))
    assert when(clock, out) == [("care.inactivity_warning", "2026-11-28T10:50:00+01:00"),
                                ("care.inactivity", "2026-11-28T11:00:00+01:00")]
    assert out[1].data["warned"] is True


def test_one_alert_until_activity_resumes() -> None:
    rule = check_in()
    clock = started(rule, epoch(2026, 11, 28, 6, 0))
    assert types(run_until(rule, clock, epoch(2026, 11, 30, 12, 0))) == ["care.inactivity"]
    [resumed] = rule.observe(OPENED, *clock.args())       # 12:00, outside the window
    assert resumed.type == "care.activity_resumed" and resumed.critical
    assert when(clock, run_until(rule, clock, epoch(2026, 12, 1, 12, 0))) == [
        ("care.inactivity", "2026-12-01T11:00:00+01:00")]


def test_window_across_midnight() -> None:
    rule = check_in(from_="22:00", to="01:00", warn_min=15)
    clock = started(rule, epoch(2026, 11, 28, 12, 0))
    assert when(clock, run_until(rule, clock, epoch(2026, 11, 29, 2, 0))) == [
        ("care.inactivity_warning", "2026-11-29T00:45:00+01:00"),
        ("care.inactivity", "2026-11-29T01:00:00+01:00")]


@pytest.mark.parametrize("day, hours", [((2026, 3, 29), 2.0), ((2026, 10, 25), 4.0)])
def test_window_on_dst_nights(day: tuple, hours: float) -> None:
    """01:00-04:00 lasts 2 h on the spring-forward night and 4 h on the fall-back one."""
    rule = check_in(from_="01:00", to="04:00", warn_min=30)
    clock = started(rule, epoch(*day, 1, 0))
    warning, alert = run_until(rule, clock, epoch(*day, 12, 0))
    assert local(clock.wall_of(alert.at)) == local(epoch(*day, 4, 0))
    assert alert.at - 1000.0 == hours * 3600 and alert.at - warning.at == 30 * MINUTE


def test_started_inside_the_window_counts_from_the_start() -> None:
    rule = check_in()
    clock = started(rule, epoch(2026, 11, 28, 10, 0))
    assert types(run_until(rule, clock, epoch(2026, 11, 28, 12, 0))) == ["care.inactivity"]


def test_unsynchronised_clock_is_reported() -> None:
    rule = check_in()
    clock = started(rule, epoch(2026, 11, 28, 6, 0))
    clock.synced = False
    [alert] = run_until(rule, clock, epoch(2026, 11, 28, 12, 0))
    assert alert.data["clock_synced"] is False

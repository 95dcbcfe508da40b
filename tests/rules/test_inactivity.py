"""Inactivity modes daytime / continuous with the warning (agent/rules/inactivity.py)."""
from __future__ import annotations

from typing import List

import pytest
from hypothesis import given, settings, strategies as st

from agent.errors import ConfigError
from agent.rules.activity import WARN_PATTERN, CareNotice
from agent.rules.care import CareEvent
from agent.rules.checkin import CheckInRule
from agent.rules.inactivity import InactivityRuleSettings, QuietRule, inactivity_rule
from drivers.events import SensorEvent
from drivers.sos import SosButton
from tests.rules.support import BERLIN, HOUR, MINUTE, OPENED, Clock, epoch, local, run_until, types


def quiet(mode: str = "daytime", hours: float = 1, warn_min: float = 0,
          from_: str = "07:00", to: str = "22:00") -> QuietRule:
    rule = inactivity_rule(InactivityRuleSettings(mode=mode, hours=hours, from_=from_, to=to,
                                                  warn_min=warn_min), BERLIN)
    assert isinstance(rule, QuietRule)
    return rule


def started(rule: QuietRule, wall: float) -> Clock:
    clock = Clock(wall)
    assert rule.advance(*clock.args()) == []
    return clock


def test_warning_not_cancelled_ends_in_inactivity() -> None:
    rule = quiet(hours=1, warn_min=5)
    clock = started(rule, epoch(2026, 11, 28, 8, 0))
    assert rule.next_deadline() == pytest.approx(clock.mono + HOUR)
    warned = run_until(rule, clock, epoch(2026, 11, 28, 9, 0))
    [warning] = warned
    assert isinstance(warning, CareNotice) and not warning.critical
    assert warning.type == "care.inactivity_warning" and rule.warning
    assert warning.data["warn_min"] == 5 and warning.data["mode"] == "daytime"
    assert warning.data["ends_at"] == "2026-11-28T08:05:00.000Z"   # 09:05 CET
    assert rule.next_deadline() == pytest.approx(clock.mono + 5 * MINUTE)
    out = run_until(rule, clock, epoch(2026, 11, 28, 12, 0))
    [alert] = out
    assert alert.type == "care.inactivity" and alert.critical and not isinstance(alert, CareNotice)
    assert local(clock.wall_of(alert.at)) == "2026-11-28T09:05:00+01:00"
    assert alert.data["warned"] is True and alert.data["idle_s"] == 65 * MINUTE
    assert rule.next_deadline() is None and not rule.warning   # no repeat until activity


def short_press(sos: SosButton, at: float) -> List[SensorEvent]:
    """A tap shorter than hold_ms, as the SOS driver sees it."""
    return sos.edge(True, at) + sos.advance(at + 0.2) + sos.edge(False, at + 0.3) + sos.advance(at + 0.4)


def test_short_sos_press_cancels_the_warning() -> None:
    rule, sos = quiet(hours=1, warn_min=5), SosButton("sos", hold_ms=1000)
    clock = started(rule, epoch(2026, 11, 28, 8, 0))
    sos.start(False, clock.mono)
    sos.advance(clock.mono + 1)
    assert types(run_until(rule, clock, epoch(2026, 11, 28, 9, 2))) == ["care.inactivity_warning"]
    presses = short_press(sos, clock.mono)
    assert [e.type for e in presses] == ["sos.short_press"]     # never sos.pressed
    clock.tick(0.4)
    [cancel] = [e for p in presses for e in rule.observe(p, *clock.args())]
    assert cancel.type == "care.inactivity_cancelled" and not cancel.critical
    assert cancel.data["trigger"] == "sos.short_press" and cancel.data["sensor"] == "sos"
    assert cancel.data["warned_s"] == pytest.approx(2 * MINUTE + 0.4)
    # the warning's end passes quietly; a new episode counts from the press
    assert run_until(rule, clock, epoch(2026, 11, 28, 10, 0)) == []
    assert local(clock.wall_of(rule.next_deadline() or 0)) == "2026-11-28T10:02:00+01:00"


def test_activity_after_the_alert_resumes_and_starts_a_new_episode() -> None:
    rule = quiet(hours=1)
    clock = started(rule, epoch(2026, 11, 28, 8, 0))
    assert types(run_until(rule, clock, epoch(2026, 11, 28, 11, 0))) == ["care.inactivity"]
    [resumed] = rule.observe(OPENED, *clock.args())
    assert resumed.type == "care.activity_resumed" and resumed.critical
    assert resumed.data["trigger"] == "door.opened"
    assert types(run_until(rule, clock, epoch(2026, 11, 28, 12, 0))) == ["care.inactivity"]


def test_start_up_reports_and_other_events_are_not_activity() -> None:
    rule = quiet(hours=1, warn_min=5)
    clock = started(rule, epoch(2026, 11, 28, 8, 0))
    run_until(rule, clock, epoch(2026, 11, 28, 9, 1))
    for event in (SensorEvent("door.opened", "front_door", 0.0, {"state": "open", "initial": True}),
                  SensorEvent("sensor.flapping", "front_door", 0.0, {})):
        assert rule.observe(event, *clock.args()) == [] and rule.warning


def test_continuous_half_an_hour_across_midnight() -> None:
    rule = quiet(mode="continuous", hours=0.5)
    clock = started(rule, epoch(2026, 11, 28, 23, 50))
    [alert] = run_until(rule, clock, epoch(2026, 11, 29, 1, 0))
    assert local(clock.wall_of(alert.at)) == "2026-11-29T00:20:00+01:00"
    assert alert.data["mode"] == "continuous" and alert.data["window"] == "00:00-00:00"


def test_daytime_counts_only_inside_the_window_across_midnight() -> None:
    rule = quiet(hours=1)
    clock = started(rule, epoch(2026, 11, 28, 21, 30))
    [alert] = run_until(rule, clock, epoch(2026, 11, 29, 9, 0))
    assert local(clock.wall_of(alert.at)) == "2026-11-29T07:30:00+01:00"


def test_warning_runs_in_real_minutes_past_the_window_end() -> None:
    rule = quiet(hours=1, warn_min=5)
    clock = started(rule, epoch(2026, 11, 28, 20, 58))
    out = run_until(rule, clock, epoch(2026, 11, 28, 23, 0))
    assert [(e.type, local(clock.wall_of(e.at))) for e in out] == [
        ("care.inactivity_warning", "2026-11-28T21:58:00+01:00"),
        ("care.inactivity", "2026-11-28T22:03:00+01:00")]


@pytest.mark.parametrize("start, expected", [
    # spring forward (29 March 2026, 02:00 CET -> 03:00 CEST): 2 h 10 min real time
    ((2026, 3, 29, 1, 30, 0), "2026-03-29T04:40:00+02:00"),
    # fall back (25 October 2026, 03:00 CEST -> 02:00 CET): the repeated hour counts
    ((2026, 10, 25, 1, 30, 0), "2026-10-25T02:40:00+01:00"),
])
def test_continuous_across_dst(start: tuple, expected: str) -> None:
    rule = quiet(mode="continuous", hours=2, warn_min=10)
    clock = started(rule, epoch(*start))
    warning, alert = run_until(rule, clock, epoch(*start) + 5 * HOUR)
    assert warning.at - 1000.0 == pytest.approx(2 * HOUR)
    assert local(clock.wall_of(alert.at)) == expected   # warned for 10 real minutes


@pytest.mark.parametrize("day, expected", [
    ((2026, 3, 29), "2026-03-29T05:00:00+02:00"),    # 01:00-05:00 lasts 3 h: due at its end
    ((2026, 10, 25), "2026-10-25T03:00:00+01:00"),   # lasts 5 h: 3 h are over at 03:00 CET
])
def test_daytime_window_on_dst_nights(day: tuple, expected: str) -> None:
    rule = quiet(hours=3, from_="01:00", to="05:00")
    clock = started(rule, epoch(*day, 0, 0))
    [alert] = run_until(rule, clock, epoch(*day, 12, 0))
    assert local(clock.wall_of(alert.at)) == expected


def test_unsynchronised_clock_jump_neither_adds_nor_removes_quiet_time() -> None:
    rule = quiet(mode="continuous", hours=1)
    clock = started(rule, epoch(2025, 1, 1, 12, 0))   # fake-hwclock's stale time
    clock.synced = False
    clock.tick(10 * MINUTE)
    assert rule.advance(*clock.args()) == []
    clock.wall, clock.synced = epoch(2026, 11, 28, 9, 0), True   # NTP: almost two years on
    assert rule.advance(*clock.args()) == []
    [alert] = run_until(rule, clock, epoch(2026, 11, 28, 12, 0))
    assert alert.at == pytest.approx(1000.0 + HOUR)
    assert alert.data["clock_synced"] is False
    assert types(run_until(rule, clock, epoch(2026, 11, 29, 12, 0))) == []


def test_monotonic_time_going_back_is_refused() -> None:
    rule = quiet()
    clock = started(rule, epoch(2026, 11, 28, 8, 0))
    with pytest.raises(ValueError, match="monotonic"):
        rule.advance(clock.mono - 1, clock.wall, True)


@pytest.mark.parametrize("kwargs, field", [
    ({"mode": "sometimes"}, "care.inactivity.mode"),
    ({"mode": "continuous", "hours": 0.4}, "care.inactivity.hours"),
    ({"hours": 0}, "care.inactivity.hours"),
    ({"hours": True}, "care.inactivity.hours"),
    ({"warn_min": -1}, "care.inactivity.warn_min"),
    ({"from_": "7am"}, "care.inactivity.from"),
    ({"mode": "check_in", "from_": "08:00", "to": "08:00"}, "care.inactivity.to"),
])
def test_bad_settings_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        InactivityRuleSettings(**kwargs)


def test_defaults_and_factory() -> None:
    settings = InactivityRuleSettings()
    assert (settings.mode, settings.hours, settings.from_, settings.to, settings.warn_min) == (
        "daytime", 12.0, "07:00", "22:00", 0.0)
    assert isinstance(inactivity_rule(InactivityRuleSettings(mode="check_in"), BERLIN), CheckInRule)
    assert WARN_PATTERN == (0.2, 0.8, 60)          # docs/spec.md §14.1


def test_notices_are_only_the_warning_events() -> None:
    with pytest.raises(ValueError, match="not a care notice"):
        CareNotice("care.inactivity", "agent", 0.0, {})
    with pytest.raises(ValueError, match="critical"):
        CareEvent("care.inactivity_warning", "agent", 0.0, {}, critical=False)


def _events_with_calls(mode: str, calls: List[float], activity: List[float]) -> list:
    """Run a rule over two days with ``advance`` at ``calls`` and activity at ``activity``."""
    settings = (InactivityRuleSettings(mode="check_in", from_="07:00", to="11:00", warn_min=10)
                if mode == "check_in" else
                InactivityRuleSettings(mode=mode, hours=1, from_="01:00", to="05:00", warn_min=5))
    rule = inactivity_rule(settings, BERLIN)
    clock = Clock(epoch(2026, 10, 24, 20, 0))          # the fall-back night inside
    base = clock.mono
    rule.advance(*clock.args())
    out = []
    for t, is_act in sorted([(c, False) for c in calls] + [(a, True) for a in activity]):
        clock.tick(base + t - clock.mono)
        out += (rule.observe(OPENED, *clock.args()) if is_act else rule.advance(*clock.args()))
    clock.tick(base + 48 * HOUR - clock.mono)
    out += rule.advance(*clock.args())
    return [(e.type, round(e.at, 2)) for e in out]


@given(calls=st.lists(st.floats(0, 48 * HOUR), max_size=30),
       activity=st.lists(st.floats(0, 48 * HOUR), max_size=4),
       mode=st.sampled_from(["daytime", "continuous", "check_in"]))
@settings(max_examples=60, deadline=None)
def test_events_do_not_depend_on_how_often_advance_runs(calls: List[float], activity: List[float],
                                                        mode: str) -> None:
    assert _events_with_calls(mode, calls, activity) == _events_with_calls(mode, [], activity)

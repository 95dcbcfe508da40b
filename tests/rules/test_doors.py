"""Door rules (agent/rules/doors.py): left open, and out at night without coming back."""
from __future__ import annotations

from typing import List

import pytest
from hypothesis import given, settings, strategies as st

from agent.errors import ConfigError
from agent.rules.care import CareEvent, DailyWindow
from agent.rules.doors import (DoorLeftOpenRule, DoorLeftOpenSettings, NightExitRule,
                               NightExitSettings)
from drivers.motion import MotionSensor
from tests.rules.support import (BERLIN, CLOSED, HOUR, MINUTE, MOTION, OPENED, Clock, Ev, epoch, local,
                                 run_until, types)

NIGHT = DailyWindow("22:00", "06:00", BERLIN)


def left_open(minutes: float = 10, night_only: bool = False) -> DoorLeftOpenRule:
    return DoorLeftOpenRule(DoorLeftOpenSettings(minutes=minutes, night_only=night_only), NIGHT)


def when(clock: Clock, events: List[CareEvent]) -> list:
    return [(e.type, local(clock.wall_of(e.at))) for e in events]


@pytest.mark.parametrize("night_only, hour, fires", [
    (True, 23, True), (True, 14, False), (False, 14, True), (False, 23, True)])
def test_door_open_11_minutes(night_only: bool, hour: int, fires: bool) -> None:
    rule, clock = left_open(night_only=night_only), Clock(epoch(2026, 11, 28, hour, 0))
    assert rule.observe(OPENED, *clock.args()) == []
    out = run_until(rule, clock, epoch(2026, 11, 28, hour, 11))
    assert when(clock, out) == ([("care.door_left_open", f"2026-11-28T{hour}:10:00+01:00")]
                                if fires else [])
    if fires:
        assert out[0].critical and out[0].sensor == "front_door"
        assert out[0].data["door"] == "front_door" and out[0].data["open_s"] == 600


def test_closed_in_time_raises_nothing() -> None:
    rule, clock = left_open(), Clock(epoch(2026, 11, 28, 23, 0))
    rule.observe(OPENED, *clock.args())
    rule.observe(CLOSED, *clock.tick(9 * MINUTE).args())
    assert run_until(rule, clock, epoch(2026, 11, 29, 1, 0)) == [] and rule.next_deadline() is None


def test_night_only_waits_for_the_night() -> None:
    rule, clock = left_open(night_only=True), Clock(epoch(2026, 11, 28, 21, 0))
    rule.observe(OPENED, *clock.args())
    out = run_until(rule, clock, epoch(2026, 11, 29, 2, 0))
    assert when(clock, out) == [("care.door_left_open", "2026-11-28T22:00:00+01:00")]
    assert out[0].data["open_s"] == 3600 and out[0].data["window"] == "22:00-06:00"


def test_one_event_per_opening_and_per_door() -> None:
    rule, clock = left_open(), Clock(epoch(2026, 11, 28, 12, 0))
    rule.observe(OPENED, *clock.args())
    rule.observe(Ev("door.opened", sensor="back_door"), *clock.tick(MINUTE).args())
    out = run_until(rule, clock, epoch(2026, 11, 28, 18, 0))
    assert [(e.sensor, local(clock.wall_of(e.at))) for e in out] == [
        ("front_door", "2026-11-28T12:10:00+01:00"), ("back_door", "2026-11-28T12:11:00+01:00")]


def test_a_door_open_at_start_up_counts() -> None:
    rule, clock = left_open(), Clock(epoch(2026, 11, 28, 12, 0))
    rule.observe(Ev("door.opened", data={"state": "open", "initial": True}), *clock.args())
    assert types(run_until(rule, clock, epoch(2026, 11, 28, 13, 0))) == ["care.door_left_open"]


def night_exit(return_min: float = 30) -> NightExitRule:
    return NightExitRule(NightExitSettings(return_min=return_min), NIGHT)


def go_out(rule: NightExitRule, clock: Clock) -> None:
    assert rule.observe(OPENED, *clock.args()) == []
    assert rule.observe(CLOSED, *clock.tick(20).args()) == []


def test_out_at_two_and_no_motion_for_30_minutes() -> None:
    rule, clock = night_exit(), Clock(epoch(2026, 11, 28, 2, 0))
    go_out(rule, clock)
    out = run_until(rule, clock, epoch(2026, 11, 28, 3, 0))
    assert when(clock, out) == [("care.not_returned", "2026-11-28T02:30:20+01:00")]
    assert out[0].critical and out[0].data["door"] == "front_door"
    assert out[0].data["exit_at"] == "2026-11-28T01:00:00.000Z"


def test_motion_at_minute_29_means_she_is_back() -> None:
    rule, clock = night_exit(), Clock(epoch(2026, 11, 28, 2, 0))
    pir = MotionSensor("hall")
    pir.start(False, clock.mono)
    go_out(rule, clock)
    run_until(rule, clock, epoch(2026, 11, 28, 2, 29))
    assert pir.edge(True, clock.mono) == [] and pir.advance(clock.tick(0.1).mono) == []
    [motion] = pir.drain_activity()   # motion is activity, and is not sent (report: false)
    assert rule.observe(motion, *clock.args()) == []
    assert run_until(rule, clock, epoch(2026, 11, 28, 4, 0)) == []


@pytest.mark.parametrize("first, then", [
    ((21, 59), (22, 1)),     # opened before the night
    ((5, 59), (6, 1)),       # closed after it
])
def test_only_an_exit_inside_the_window(first: tuple, then: tuple) -> None:
    rule, clock = night_exit(), Clock(epoch(2026, 11, 28, *first))
    rule.observe(OPENED, *clock.args())
    rule.observe(CLOSED, *clock.to_wall(epoch(2026, 11, 28, *then)).args())
    assert run_until(rule, clock, epoch(2026, 11, 28, 12, 0)) == []


def test_start_up_reports_and_reopening() -> None:
    rule, clock = night_exit(), Clock(epoch(2026, 11, 28, 2, 0))
    rule.observe(Ev("door.closed", data={"state": "closed", "initial": True}), *clock.args())
    assert rule.next_deadline() is None
    go_out(rule, clock)
    rule.observe(OPENED, *clock.tick(10 * MINUTE).args())    # back in
    assert run_until(rule, clock, epoch(2026, 11, 28, 4, 0)) == []


def test_not_returned_on_the_fall_back_night() -> None:
    rule, clock = night_exit(), Clock(epoch(2026, 10, 25, 2, 50))   # 02:50 CEST, first pass
    go_out(rule, clock)
    [alert] = run_until(rule, clock, epoch(2026, 10, 25, 5, 0))
    assert alert.data["local_time"] == "2026-10-25T02:20:20+01:00"   # 30 real min: second pass


@pytest.mark.parametrize("make", [lambda: DoorLeftOpenSettings(minutes=0),
                                  lambda: DoorLeftOpenSettings(night_only="yes"),
                                  lambda: NightExitSettings(return_min=-5)])
def test_bad_settings(make) -> None:
    with pytest.raises(ConfigError, match="care\\.(door_left_open|night_exit)\\."):
        make()


def test_defaults() -> None:
    assert (DoorLeftOpenSettings().minutes, DoorLeftOpenSettings().night_only) == (10.0, False)
    assert NightExitSettings().return_min == 30.0


def _door_events(calls: List[float], night_only: bool) -> list:
    """Open from 20:00 for 9 h, then a night exit 27.5 h in (22:30 CET), no motion."""
    rules = [left_open(night_only=night_only), night_exit()]
    clock = Clock(epoch(2026, 10, 24, 20, 0))   # the fall-back night
    base, out = clock.mono, []
    script = [(0.0, OPENED), (9 * HOUR, CLOSED), (27.5 * HOUR, OPENED),
              (27.5 * HOUR + 30, CLOSED)] + [(c, None) for c in calls]
    for t, event in sorted(script, key=lambda s: s[0]):
        clock.tick(base + t - clock.mono)
        for rule in rules:
            out += rule.observe(event, *clock.args()) if event else rule.advance(*clock.args())
    clock.tick(base + 40 * HOUR - clock.mono)
    out += [e for rule in rules for e in rule.advance(*clock.args())]
    return sorted((e.type, round(e.at, 2)) for e in out)



@given(calls=st.lists(st.floats(0, 40 * HOUR), max_size=30), night_only=st.booleans())
@settings(max_examples=60, deadline=None)
def test_door_events_do_not_depend_on_how_often_advance_runs(calls: List[float],
                                                             night_only: bool) -> None:
    assert _door_events(calls, night_only) == _door_events([], night_only)

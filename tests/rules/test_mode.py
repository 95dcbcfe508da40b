"""Away mode (agent/rules/mode.py): the care rules raise nothing while away."""
from __future__ import annotations

from typing import List

import pytest

from agent.rules.activity import Rule
from agent.rules.care import DailyWindow
from agent.rules.doors import (DoorLeftOpenRule, DoorLeftOpenSettings, NightExitRule,
                               NightExitSettings)
from agent.rules.inactivity import InactivityRuleSettings, inactivity_rule
from agent.rules.mode import AWAY, HOME, ModeGate, parse_mode_args
from tests.rules.support import (BERLIN, CLOSED, HOUR, MINUTE, OPENED, Clock, epoch, local,
                                 run_until, types)

NIGHT = DailyWindow("22:00", "06:00", BERLIN)


def all_rules() -> List[Rule]:
    return [inactivity_rule(InactivityRuleSettings(mode="continuous", hours=0.5, warn_min=5), BERLIN),
            DoorLeftOpenRule(DoorLeftOpenSettings(night_only=True), NIGHT),
            NightExitRule(NightExitSettings(), NIGHT)]


def test_home_raises_each_rule() -> None:
    gate, clock = ModeGate(all_rules), Clock(epoch(2026, 11, 28, 2, 0))
    gate.advance(*clock.args())
    gate.observe(OPENED, *clock.args())
    gate.observe(CLOSED, *clock.tick(20).args())   # out at 02:00
    gate.observe(OPENED, *clock.tick(MINUTE).args())   # and the door left open
    out = run_until(gate, clock, epoch(2026, 11, 28, 3, 0))
    assert sorted(set(types(out))) == ["care.door_left_open", "care.inactivity",
                                       "care.inactivity_warning"]
    gate2, clock2 = ModeGate(all_rules), Clock(epoch(2026, 11, 28, 2, 0))
    gate2.advance(*clock2.args())
    gate2.observe(OPENED, *clock2.args())
    gate2.observe(CLOSED, *clock2.tick(20).args())
    assert "care.not_returned" in types(run_until(gate2, clock2, epoch(2026, 11, 28, 3, 0)))


def test_away_suppresses_every_rule_and_home_starts_afresh() -> None:
    gate, clock = ModeGate(all_rules), Clock(epoch(2026, 11, 28, 1, 0))
    gate.advance(*clock.args())
    run_until(gate, clock, epoch(2026, 11, 28, 1, 20))
    assert gate.set_mode(AWAY, *clock.args()) and gate.mode == AWAY
    assert gate.next_deadline() is None and gate.rules == []
    out = gate.observe(OPENED, *clock.to_wall(epoch(2026, 11, 28, 2, 0)).args())
    out += gate.observe(CLOSED, *clock.tick(20).args())
    out += gate.observe(OPENED, *clock.tick(MINUTE).args())
    out += run_until(gate, clock, epoch(2026, 11, 28, 5, 0))
    assert out == []
    assert gate.set_mode(HOME, *clock.args())
    assert not gate.set_mode(HOME, *clock.args())   # no change, nothing restarted
    # a fresh quiet episode from 05:00; the open door's clock starts again at its next opening
    out = run_until(gate, clock, epoch(2026, 11, 28, 6, 0))
    assert [(e.type, local(clock.wall_of(e.at))) for e in out] == [
        ("care.inactivity_warning", "2026-11-28T05:30:00+01:00"),
        ("care.inactivity", "2026-11-28T05:35:00+01:00")]


def test_a_restart_keeps_the_mode() -> None:
    """The loop passes the saved mode: a gate built away has no rules until home."""
    gate, clock = ModeGate(all_rules, mode=AWAY), Clock(epoch(2026, 11, 28, 12, 0))
    assert gate.advance(*clock.args()) == [] and gate.rules == []
    assert run_until(gate, clock, epoch(2026, 11, 29, 12, 0)) == []
    gate.set_mode(HOME, *clock.args())
    assert gate.next_deadline() == pytest.approx(clock.mono + 0.5 * HOUR)


@pytest.mark.parametrize("args, mode", [({"mode": "away"}, AWAY), ({"mode": "home"}, HOME)])
def test_mode_args(args: dict, mode: str) -> None:
    assert parse_mode_args(args) == mode


@pytest.mark.parametrize("args", [{}, {"mode": "holiday"}, {"mode": "away", "until": 3},
                                  {"mode": True}])
def test_other_args_are_bad(args: dict) -> None:
    with pytest.raises(ValueError, match="mode: away"):
        parse_mode_args(args)


def test_unknown_saved_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="saved mode"):
        ModeGate(all_rules, mode="holiday")

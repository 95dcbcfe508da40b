"""The version-2 care rules and the motion kind in the config (docs/spec.md §14), and
what the agent builds from them (agent.app.assemble.care_rules, agent.app.mode)."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.app.assemble import care_rules
from agent.app.mode import HomeMode, load_mode
from agent.config.model import ConfigProblems, parse_config
from agent.config.schema import Config
from agent.rules.care import CareRules
from agent.rules.doors import DoorLeftOpenRule, NightExitRule
from agent.rules.inactivity import QuietRule
from drivers.motion import DEFAULTS as MOTION_DEFAULTS

# Lines: 1 device / 2 id / 3 timezone / 4 mqtt / 5 host / 6 sensors / 7 sos / 8 door / 9 ...
BASE = """\
device:
  id: gw-1
  timezone: Europe/Berlin
mqtt:
  host: localhost
sensors:
  - {name: sos, kind: sos_button, pin: 17, hold_ms: 1500}
  - {name: door, kind: door, pin: 27}
"""
MOTION = "  - {name: hall, kind: motion, pin: 22}\n"


def ok(text: str) -> Config:
    return parse_config(text, Path("/etc/hc/config.yaml"), environ={})


def problems(text: str) -> str:
    with pytest.raises(ConfigProblems) as e:
        ok(text)
    return str(e.value)


def test_motion_takes_the_drivers_defaults_pull_down_active_high() -> None:
    sensor = ok(BASE + MOTION).sensor("hall")
    assert sensor.timing() == dict(MOTION_DEFAULTS)
    assert (sensor.pull, sensor.active, sensor.flapping, sensor.report) == ("down", "high", None, False)


def test_a_version_1_file_keeps_care_py_inactivity() -> None:
    config = ok(BASE + "care:\n  inactivity: {enabled: true, hours: 2.5}\n")
    assert config.care_v2.inactivity is None and config.care.inactivity.enabled
    assert [type(r) for r in care_rules(config).rules] == [CareRules]


def test_the_v2_rules_replace_care_py_inactivity_and_keep_its_night_door() -> None:
    config = ok(BASE + MOTION + """\
care:
  night_door: {enabled: true}
  inactivity: {enabled: true, mode: continuous, hours: 0.5, warn_min: 5}
  door_left_open: {enabled: true, minutes: 11, night_only: true}
  night_exit: {enabled: true, return_min: 30}
""")
    rules = care_rules(config).rules
    assert [type(r) for r in rules] == [CareRules, QuietRule, DoorLeftOpenRule, NightExitRule]
    assert isinstance(rules[0], CareRules)
    assert rules[0].settings.night_door.enabled and not rules[0].settings.inactivity.enabled
    assert config.care_v2.inactivity is not None and config.care_v2.inactivity.warn_min == 5
    assert config.warnings == ()


def test_night_exit_needs_a_motion_sensor_at_its_line() -> None:
    text = problems(BASE + "care:\n  night_exit: {enabled: true}\n")
    assert "config.yaml:10:" in text and "night_exit needs a motion sensor" in text


def test_continuous_needs_half_an_hour() -> None:
    text = problems(BASE + "care:\n  inactivity: {enabled: true, mode: continuous, hours: 0.25}\n")
    assert "config.yaml:10:" in text and "care.inactivity.hours" in text and "0.5" in text


def test_unknown_mode_is_an_error_at_its_position() -> None:
    text = problems(BASE + "care:\n  inactivity: {enabled: true, mode: nightly}\n")
    assert "config.yaml:10:" in text and "care.inactivity.mode" in text


def test_warn_min_without_a_hold_time_warns() -> None:
    text = BASE.replace(", hold_ms: 1500", "") + "care:\n  inactivity: {enabled: true, warn_min: 5}\n"
    (warning,) = ok(text).warnings
    assert "hold_ms" in str(warning) and "care.inactivity.warn_min" in str(warning)


def test_the_mode_is_kept_in_state_dir_and_away_drops_the_rules(tmp_path: Path) -> None:
    config = ok(BASE + "care:\n  door_left_open: {enabled: true}\n")
    assert load_mode(tmp_path) == "home"
    gate = care_rules(config, load_mode(tmp_path))
    mode = HomeMode(gate, tmp_path, wall=lambda: 1.7e9, synced=lambda: True)
    (event,) = mode.set("away", 10.0)
    assert (event.type, dict(event.data), gate.rules) == ("agent.mode", {"mode": "away"}, [])
    assert mode.set("away", 11.0) == []             # unchanged: no event
    restarted = care_rules(config, load_mode(tmp_path))
    assert restarted.mode == "away" and restarted.rules == []
    assert [e.type for e in HomeMode(restarted, tmp_path, wall=lambda: 1.7e9,
                                     synced=lambda: True).set("home", 12.0)] == ["agent.mode"]
    assert load_mode(tmp_path) == "home" and len(restarted.rules) == 1


def test_a_garbled_mode_file_starts_at_home(tmp_path: Path) -> None:
    (tmp_path / "mode").write_text("asleep")
    assert load_mode(tmp_path) == "home"

"""The supervision input kinds in the config (docs/spec.md §13.1-13.2): tamper, mains,
battery, and a smoke sensor's Form C ``pin_nc`` / ``wiring_fault_ms``."""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest

from agent.config.model import ConfigProblems, parse_config
from agent.config.schema import Config
from drivers.power import BATTERY_DEFAULTS, MAINS_DEFAULTS
from drivers.smoke import WIRING_FAULT_MS
from drivers.tamper import DEFAULTS as TAMPER_DEFAULTS

# Lines: 1 device / 2 id / 3 mqtt / 4 host / 5 sensors / 6 sos / 7 the sensor under test
BASE = """\
device:
  id: gw-1
mqtt:
  host: localhost
sensors:
  - {name: sos, kind: sos_button, pin: 17}
"""


def ok(sensor: str) -> Config:
    return parse_config(BASE + sensor, Path("/etc/hc/config.yaml"), environ={})


@pytest.mark.parametrize("kind,defaults", [
    ("tamper", TAMPER_DEFAULTS), ("mains", MAINS_DEFAULTS), ("battery", BATTERY_DEFAULTS)])
def test_new_kinds_take_the_drivers_defaults_pull_up_active_high(kind: str, defaults: Dict[str, float]) -> None:
    sensor = ok(f"  - {{name: x, kind: {kind}, pin: 4}}\n").sensor("x")
    assert sensor.timing() == dict(defaults)
    assert (sensor.pull, sensor.active, sensor.flapping, sensor.pin_nc) == ("up", "high", None, None)


@pytest.mark.parametrize("line,key,value", [
    ("{name: x, kind: tamper, pin: 4, open_ms: 50, close_ms: 700}", "open_ms", 50),
    ("{name: x, kind: mains, pin: 4, report_delay_s: 2.5}", "report_delay_s", 2.5),
    ("{name: x, kind: mains, pin: 4, jitter_s: 0}", "jitter_s", 0.0),
    ("{name: x, kind: mains, pin: 4, restore_delay_s: 1}", "restore_delay_s", 1.0),
    ("{name: x, kind: battery, pin: 4, low_ms: 100, ok_ms: 200}", "ok_ms", 200),
    ("{name: x, kind: tamper, pin: 4, active: low, pull: none}", "active", "low"),
    ("{name: x, kind: smoke, pin: 4, pin_nc: 5}", "pin_nc", 5),
    ("{name: x, kind: smoke, pin: 4, pin_nc: 5}", "wiring_fault_ms", WIRING_FAULT_MS),
    ("{name: x, kind: smoke, pin: 4, pin_nc: 5, wiring_fault_ms: 500}", "wiring_fault_ms", 500),
    ("{name: x, kind: smoke, pin: 4}", "pin_nc", None),
])
def test_configured_values(line: str, key: str, value: object) -> None:
    assert getattr(ok(f"  - {line}\n").sensor("x"), key) == value


def test_a_form_c_smoke_names_its_nc_input() -> None:
    config = ok("  - {name: kitchen_smoke, kind: smoke, pin: 4, pin_nc: 5}\n")
    assert config.sensor("kitchen_smoke").nc_input == "kitchen_smoke.nc"
    assert config.sensor("sos").nc_input is None


# (id, the sensor line (line 7), the text the problem points at, field path, phrase in the message)
BROKEN = [
    ("tamper-unknown-key", "{name: x, kind: tamper, pin: 4, open_sec: 1}", "open_sec", "sensors[1].open_sec",
     "did you mean 'open_ms'?"),
    ("mains-nearest-key", "{name: x, kind: mains, pin: 4, report_delay: 1}", "report_delay:",
     "sensors[1].report_delay", "did you mean 'report_delay_s'?"),
    ("mains-key-of-battery", "{name: x, kind: mains, pin: 4, low_ms: 1}", "low_ms", "sensors[1].low_ms",
     "low_ms is not a key of a mains sensor"),
    ("battery-key-of-mains", "{name: x, kind: battery, pin: 4, jitter_s: 1}", "jitter_s", "sensors[1].jitter_s",
     "jitter_s is not a key of a battery sensor"),
    ("mains-delay-zero", "{name: x, kind: mains, pin: 4, report_delay_s: 0}", "0}",
     "sensors[1].report_delay_s", "too small"),
    ("mains-delay-hours", "{name: x, kind: mains, pin: 4, report_delay_s: 7200}", "7200",
     "sensors[1].report_delay_s", "3600"),
    ("mains-jitter-negative", "{name: x, kind: mains, pin: 4, jitter_s: -1}", "-1",
     "sensors[1].jitter_s", "-1"),
    ("mains-restore-text", "{name: x, kind: mains, pin: 4, restore_delay_s: soon}", "soon",
     "sensors[1].restore_delay_s", "expected a number of seconds"),
    ("battery-low-float", "{name: x, kind: battery, pin: 4, low_ms: 1.5}", "1.5", "sensors[1].low_ms",
     "whole number"),
    ("tamper-open-zero", "{name: x, kind: tamper, pin: 4, open_ms: 0}", "0}", "sensors[1].open_ms", "0"),
    ("pin-nc-on-door", "{name: x, kind: door, pin: 4, pin_nc: 5}", "pin_nc", "sensors[1].pin_nc",
     "pin_nc is not a key of a door sensor"),
    ("pin-nc-on-mains", "{name: x, kind: mains, pin: 4, wiring_fault_ms: 5}", "wiring_fault_ms",
     "sensors[1].wiring_fault_ms", "not a key of a mains sensor"),
    ("pin-nc-not-bcm", "{name: x, kind: smoke, pin: 4, pin_nc: 40}", "40", "sensors[1].pin_nc",
     "not a BCM GPIO"),
    ("pin-nc-is-sos-pin", "{name: x, kind: smoke, pin: 4, pin_nc: 17}", "17", "sensors[1].pin_nc",
     "pin 17 is already used by sensors[0] (sos)"),
    ("pin-nc-is-own-pin", "{name: x, kind: smoke, pin: 4, pin_nc: 4}", "4}", "sensors[1].pin_nc",
     "pin 4 is already used by sensors[1] (x)"),
    ("fault-without-nc", "{name: x, kind: smoke, pin: 4, wiring_fault_ms: 500}", "500",
     "sensors[1].wiring_fault_ms", "add pin_nc"),
    ("fault-ms-zero", "{name: x, kind: smoke, pin: 4, pin_nc: 5, wiring_fault_ms: 0}", "0}",
     "sensors[1].wiring_fault_ms", "0"),
    ("fault-ms-nearest", "{name: x, kind: smoke, pin: 4, pin_nc: 5, wiring_fault: 9}", "wiring_fault:",
     "sensors[1].wiring_fault", "did you mean 'wiring_fault_ms'?"),
    ("nc-suffix-name", "{name: a.nc, kind: door, pin: 4}", "a.nc", "sensors[1].name", "ends in '.nc'"),
    ("kind-typo", "{name: x, kind: main, pin: 4}", "main,", "sensors[1].kind", "mains"),
]


@pytest.mark.parametrize("line,at,path,phrase", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_broken_supervision_keys_report_file_line_col(line: str, at: str, path: str, phrase: str) -> None:
    col = f"  - {line}".index(at) + 1
    with pytest.raises(ConfigProblems) as info:
        parse_config(BASE + f"  - {line}\n", Path("/etc/hc/config.yaml"), environ={},
                     file_name="config.yaml")
    found = list(info.value.problems)
    assert len(found) == 1, "\n".join(map(str, found))
    problem = found[0]
    assert (problem.file, problem.line, problem.col, problem.field_path) == ("config.yaml", 7, col, path), str(problem)
    assert phrase in problem.message, str(problem)
    assert str(problem).startswith(f"config.yaml:7:{col}: {path}: ")


def test_a_later_sensor_on_a_pin_nc_names_the_nc_pin() -> None:
    with pytest.raises(ConfigProblems) as info:
        parse_config(BASE + "  - {name: s, kind: smoke, pin: 4, pin_nc: 5}\n"
                     "  - {name: lid, kind: tamper, pin: 5}\n", Path("/c.yaml"), environ={})
    (problem,) = info.value.problems
    assert problem.field_path == "sensors[2].pin" and "sensors[1].pin_nc (s)" in problem.message

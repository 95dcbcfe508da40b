"""agent.sim and drivers.timeline for the supervision kinds: what a timeline may name, how a
Form C relay is driven, and how long after its last entry each new kind may still report."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config.model import parse_config
from agent.config.schema import Config
from agent.sim.simulation import timeline_inputs, window_after_s
from drivers.timeline import TimelineDriver, TimelineError, VirtualClock, Wiring, parse_timeline

CONFIG = """\
device: {id: gw-1}
mqtt: {host: localhost}
sensors:
  - {name: smoke, kind: smoke, pin: 7, pin_nc: 8, wiring_fault_ms: 3000}
  - {name: lid, kind: tamper, pin: 4}
  - {name: mains, kind: mains, pin: 5, report_delay_s: 10, jitter_s: 4, restore_delay_s: 2}
  - {name: ups, kind: battery, pin: 6}
"""


def config() -> Config:
    return parse_config(CONFIG, Path("/c.yaml"), environ={})


def test_a_timeline_may_name_the_nc_contact_of_a_form_c_smoke_only() -> None:
    names = timeline_inputs(config())
    assert names == ["smoke", "lid", "mains", "ups", "smoke.nc"]
    [entry] = parse_timeline("- {at: 1, sensor: smoke.nc, level: inactive}", "t.yaml", names)
    assert (entry.sensor, entry.level) == ("smoke.nc", False)
    with pytest.raises(TimelineError, match="lid.nc"):
        parse_timeline("- {at: 1, sensor: lid.nc, level: inactive}", "t.yaml", names)


@pytest.mark.parametrize("sensor,level,seconds", [
    ("lid", True, 0.2), ("lid", False, 1.0), ("ups", True, 5.0), ("ups", False, 60.0),
    ("mains", True, 14.0), ("mains", False, 2.0),        # a cut: the longest jitter too
    ("smoke", True, 3.0),                                # the wiring window is longer than confirm_ms
])
def test_window_after_the_last_entry(sensor: str, level: bool, seconds: float) -> None:
    s = config().sensor(sensor)
    assert window_after_s(s, level, at_start=False, ever_active=True) == pytest.approx(seconds)


def test_the_relay_changes_over_and_the_nc_contact_moves_alone(mock_factory: Any) -> None:
    no, nc = mock_factory.pin(7), mock_factory.pin(8)
    wiring = {"smoke": Wiring(no, False, nc="smoke.nc"), "smoke.nc": Wiring(nc, False)}
    entries = parse_timeline("- {at: 0.01, sensor: smoke, level: active}\n"
                             "- {at: 0.02, sensor: smoke.nc, level: active}\n", "t", list(wiring))
    driver = TimelineDriver(entries, wiring, VirtualClock(1.0))
    driver.apply_start_levels()
    assert (no.state, nc.state) == (True, False)       # quiet, active low: NO high, NC low
    driver.release_start()
    assert driver.run()
    assert (no.state, nc.state) == (False, False)      # alarm (NO low, NC high), then NC shorted low


def test_an_nc_start_entry_overrides_the_healthy_default(mock_factory: Any) -> None:
    no, nc = mock_factory.pin(7), mock_factory.pin(8)
    wiring = {"smoke": Wiring(no, False, nc="smoke.nc"), "smoke.nc": Wiring(nc, False)}
    entries = parse_timeline("- {at: 0, sensor: smoke.nc, level: inactive}\n", "t", list(wiring))
    driver = TimelineDriver(entries, wiring, VirtualClock(1.0))
    driver.apply_start_levels()
    assert (no.state, nc.state) == (True, True)        # a cut common wire from the start
    driver.drive("smoke", True)
    assert (no.state, nc.state) == (False, True)       # the changeover: NC the opposite of NO

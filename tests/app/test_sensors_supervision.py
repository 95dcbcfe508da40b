"""The supervision kinds in the agent (docs/spec.md §13.1-13.2): their state machines built
from the config, a Form C smoke's NC contact as the input ``name.nc`` in Sensors, and the
heartbeat's power_blips. Plain-number time, plain pin readers."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytest

from agent.app.assemble import state_machine
from agent.app.reload import Resumed
from agent.app.sensors import Sensors, SensorState
from agent.config.model import parse_config
from agent.config.schema import Config
from drivers.events import SensorEvent
from drivers.power import BatteryMonitor, MainsMonitor
from drivers.smoke import SmokeDetector
from drivers.tamper import TamperSwitch

CONFIG = """\
device: {id: gw-1}
mqtt: {host: localhost}
sensors:
  - {name: lid, kind: tamper, pin: 4, open_ms: 100}
  - {name: mains, kind: mains, pin: 5, report_delay_s: 10, jitter_s: 4, restore_delay_s: 2}
  - {name: ups, kind: battery, pin: 6, low_ms: 500, ok_ms: 1000}
  - {name: smoke, kind: smoke, pin: 7, pin_nc: 8, wiring_fault_ms: 1000}
"""


class Pin:
    def __init__(self, level: bool = False) -> None:
        self.level = level

    def read(self) -> bool:
        return self.level


def config() -> Config:
    return parse_config(CONFIG, Path("/c.yaml"), environ={})


def types(events: List[SensorEvent]) -> List[str]:
    return [e.type for e in events]


def test_each_kind_gets_its_state_machine_with_the_configured_timing() -> None:
    c = config()
    half = state_machine(c.sensor("mains"), rand=lambda: 0.5)
    assert isinstance(half, MainsMonitor)
    assert isinstance(state_machine(c.sensor("lid")), TamperSwitch)
    assert isinstance(state_machine(c.sensor("ups")), BatteryMonitor)
    smoke = state_machine(c.sensor("smoke"))
    assert isinstance(smoke, SmokeDetector)
    assert smoke.start(False, 0.0, nc=True) == []                  # supervised: takes the NC level
    plain = state_machine(parse_config(CONFIG.replace(", pin_nc: 8, wiring_fault_ms: 1000", ""),
                                       Path("/c.yaml"), environ={}).sensor("smoke"))
    with pytest.raises(ValueError, match="no pin_nc"):
        plain.start(False, 0.0, nc=True)       # type: ignore[call-arg]
    # the injected random source sets the report delay: 10 s + 0.5 * 4 s
    assert half.start(True, 0.0) == [] and half.next_deadline() == pytest.approx(12.0)


def test_the_agent_s_mains_monitor_draws_from_a_real_random_source() -> None:
    delays = set()
    for _ in range(20):
        m = state_machine(config().sensor("mains"))
        m.start(True, 0.0)
        deadline = m.next_deadline()
        assert deadline is not None and 10.0 <= deadline <= 14.0
        delays.add(deadline)
    assert len(delays) > 1


@pytest.fixture
def pins() -> Dict[str, Pin]:
    # quiet Form C (active low): NO pin high = inactive, NC pin low = active
    return {"lid": Pin(), "mains": Pin(), "ups": Pin(), "smoke": Pin(False), "smoke.nc": Pin(True)}


@pytest.fixture
def sensors(pins: Dict[str, Pin]) -> Sensors:
    c = config()
    machines = {s.name: state_machine(s, rand=lambda: 0.0) for s in c.sensors}
    return Sensors(machines, pins, reread_s=1000.0)


def test_a_form_c_smoke_starts_from_both_pins_and_nc_edges_reach_edge_nc(sensors: Sensors) -> None:
    start = sensors.start(0.0) + sensors.advance(3.0)
    assert sorted(types(start)) == ["power.battery_ok", "power.mains_restored", "smoke.cleared",
                                    "tamper.closed"]
    assert sensors.state("smoke") == SensorState("clear", False, True)
    assert sensors.state("lid").raw_nc is None
    assert sensors.edge("smoke.nc", False, 10.0) == []          # both inactive: both pins high
    [fault] = sensors.advance(11.0)
    assert (fault.type, fault.sensor, fault.critical) == ("sensor.fault", "smoke", True)
    assert fault.data["levels"] == {"no": 1, "nc": 1}
    assert sensors.states()["smoke"] == SensorState("clear", False, False)
    sensors.edge("smoke", True, 12.0)                        # the NO contact still raises the alarm
    assert "smoke.alarm" in types(sensors.advance(13.0))


def test_an_nc_edge_of_a_sensor_without_pin_nc_is_dropped(sensors: Sensors) -> None:
    sensors.start(0.0)
    assert sensors.edge("lid.nc", True, 1.0) == [] and sensors.edge("nobody.nc", True, 1.0) == []


def test_the_reread_repairs_a_lost_nc_edge(pins: Dict[str, Pin], sensors: Sensors) -> None:
    sensors.start(0.0)
    sensors.advance(3.0)
    pins["smoke.nc"].level = False                           # the NC pin's edge never came
    [fix] = sensors.reread(4.0)
    assert (fix.sensor, fix.level, fix.events) == ("smoke.nc", False, ())
    assert sensors.reread(4.5) == []
    assert types(sensors.advance(5.0)) == ["sensor.fault"]


def test_power_blips_sum_the_mains_sensors(pins: Dict[str, Pin]) -> None:
    c = parse_config(CONFIG.replace("  - {name: ups", "  - {name: mains2, kind: mains, pin: 9}\n"
                                    "  - {name: ups"), Path("/c.yaml"), environ={})
    machines = {s.name: state_machine(s, rand=lambda: 0.0) for s in c.sensors}
    sensors = Sensors(machines, dict(pins, mains2=Pin()), reread_s=1000.0)
    sensors.start(0.0)
    assert sensors.power_blips() == 0
    for at, name in ((5.0, "mains"), (6.0, "mains2"), (20.0, "mains")):
        sensors.edge(name, True, at)
        sensors.edge(name, False, at + 1.0)                   # back before any report delay
    assert sensors.power_blips() == 3
    assert Sensors({"lid": TamperSwitch("lid")}, {"lid": Pin()}).power_blips() is None


def test_a_carried_over_form_c_smoke_resumes_with_its_nc_level(pins: Dict[str, Pin]) -> None:
    smoke = state_machine(config().sensor("smoke"))
    smoke.start(False, 0.0, nc=True)         # type: ignore[call-arg]
    sensors = Sensors({"smoke": Resumed(smoke, [])}, {"smoke": pins["smoke"], "smoke.nc": pins["smoke.nc"]})
    assert sensors.start(5.0) == []
    assert sensors.state("smoke").raw_nc is True

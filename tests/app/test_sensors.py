"""agent.app.sensors: state machines fed from pins, with the re-read; plain-number time."""
from __future__ import annotations

import logging
from typing import Dict, List

import pytest

from agent.app.sensors import Sensors, SensorState
from drivers.door import DoorContact
from drivers.events import SensorEvent
from drivers.sos import SosButton


class Pin:
    def __init__(self, level: bool = False) -> None:
        self.level = level

    def read(self) -> bool:
        return self.level


def types(events: List[SensorEvent]) -> List[str]:
    return [e.type for e in events]


@pytest.fixture
def pins() -> Dict[str, Pin]:
    return {"sos": Pin(), "door": Pin(True)}


@pytest.fixture
def sensors(pins: Dict[str, Pin]) -> Sensors:
    return Sensors({"sos": SosButton("sos"), "door": DoorContact("door")}, pins, reread_s=2.0)


def test_start_reads_every_pin_and_reports_once_the_windows_close(sensors: Sensors) -> None:
    assert sensors.start(10.0) == []
    assert sensors.next_deadline() == pytest.approx(10.03)        # SOS's 30 ms window
    assert sorted(types(sensors.advance(11.0))) == ["door.opened", "sos.released"]
    assert sensors.states() == {"sos": SensorState("released", False),
                                "door": SensorState("open", True)}


def test_an_edge_goes_to_its_sensor_and_an_unknown_sensor_is_dropped(sensors: Sensors) -> None:
    sensors.start(10.0)
    sensors.advance(11.0)
    assert sensors.edge("sos", True, 12.0) == []                   # debouncing
    assert sensors.edge("garage", True, 12.0) == []
    assert types(sensors.advance(12.1)) == ["sos.pressed"]
    assert sensors.state("sos") == SensorState("pressed", True)


def test_the_re_read_is_due_every_reread_s_and_repairs_a_lost_edge(
        sensors: Sensors, pins: Dict[str, Pin]) -> None:
    sensors.start(10.0)
    sensors.advance(11.0)
    assert not sensors.reread_due(11.9) and sensors.reread_due(12.0)
    assert sensors.next_deadline() == 12.0
    assert sensors.reread(12.0) == []                              # nothing was lost
    pins["door"].level = False                                     # closed, no callback came
    assert not sensors.reread_due(13.9)
    [fix] = sensors.reread(14.0)
    assert (fix.sensor, fix.level, fix.at) == ("door", False, 14.0)
    assert sensors.repaired_edges == 1
    assert sensors.next_deadline() is not None and sensors.next_deadline() <= 16.0
    assert types(sensors.advance(16.0)) == ["door.closed"]          # after its close window


def test_a_failing_state_machine_costs_only_its_own_events(
        pins: Dict[str, Pin], caplog: pytest.LogCaptureFixture) -> None:
    class Broken(SosButton):
        def advance(self, now: float) -> List[SensorEvent]:
            raise RuntimeError("bug in one sensor")

    sensors = Sensors({"sos": Broken("sos"), "door": DoorContact("door")}, pins)
    sensors.start(10.0)
    with caplog.at_level(logging.ERROR, logger="agent.app.loop"):
        assert types(sensors.advance(11.0)) == ["door.opened"]
    assert "sensor sos failed; carrying on" in caplog.text


def test_a_re_read_interval_must_be_positive(pins: Dict[str, Pin]) -> None:
    with pytest.raises(ValueError, match="reread_s"):
        Sensors({}, pins, reread_s=0)

"""SensorEvent validates on construction and is read-only."""
from __future__ import annotations

from typing import Any, Dict

import pytest

from drivers.events import CRITICAL_TYPES, SensorEvent, is_critical


def test_event_is_frozen_and_data_read_only() -> None:
    src = {"state": "pressed"}
    e = SensorEvent("sos.pressed", "sos", 1, src, True)
    src["state"] = "changed"
    assert e.data["state"] == "pressed" and isinstance(e.at, float)
    with pytest.raises(TypeError):
        e.data["x"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        e.type = "x.y"  # type: ignore[misc]
    assert e == SensorEvent("sos.pressed", "sos", 1.0, {"state": "pressed"}, True)


@pytest.mark.parametrize("kwargs", [
    dict(type="Sos Pressed"), dict(type="sos"), dict(sensor=""), dict(sensor="bad name"),
    dict(at=float("nan")), dict(at=True), dict(critical=1), dict(data={1: 2}), dict(data=[1]),
])
def test_bad_events_are_refused(kwargs: Dict[str, Any]) -> None:
    args: Dict[str, Any] = dict(type="door.opened", sensor="front_door", at=1.0, data={}, critical=False)
    args.update(kwargs)
    with pytest.raises(ValueError):
        SensorEvent(**args)


def test_critical_types_follow_spec() -> None:
    assert CRITICAL_TYPES == {"sos.pressed", "smoke.alarm", "smoke.cleared", "sensor.stuck",
                              "tamper.opened", "power.mains_lost", "power.battery_low", "sensor.fault"}
    assert not any(map(is_critical, ["tamper.closed", "power.mains_restored", "power.battery_ok"]))
    assert not is_critical("sos.released") and is_critical("smoke.cleared")

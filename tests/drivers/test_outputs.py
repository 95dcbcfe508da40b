"""Buzzer and Led through MockFactory pins."""
from __future__ import annotations

import time
from typing import Any

import pytest

from agent.errors import WiringError
from drivers.outputs import Buzzer, Led


@pytest.mark.parametrize("active,on_level", [("high", True), ("low", False)])
def test_on_off(mock_factory: Any, active: str, on_level: bool) -> None:
    led = Led(6, active=active, pin_factory=mock_factory)
    pin = mock_factory.pin(6)
    assert pin.state is (not on_level) and not led.is_on
    led.on()
    assert pin.state is on_level and led.is_on and "on" in repr(led)
    led.off()
    assert pin.state is (not on_level)
    led.close()


def test_blink_n_times(mock_factory: Any) -> None:
    buzzer = Buzzer(5, pin_factory=mock_factory)
    pin = mock_factory.pin(5)
    buzzer.blink(0.01, 0.01, n=3)
    deadline = time.monotonic() + 2
    while sum(1 for s in pin.states if s.state) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    while buzzer.is_on and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)
    assert [s.state for s in pin.states[1:]] == [True, False] * 3
    buzzer.close()


def test_pin_clash_and_bad_active(mock_factory: Any) -> None:
    buzzer = Buzzer(5, pin_factory=mock_factory)
    with pytest.raises(WiringError, match="GPIO5"):
        Led(5, pin_factory=mock_factory)
    buzzer.close()
    with pytest.raises(WiringError):
        Led(7, active="bright", pin_factory=mock_factory)

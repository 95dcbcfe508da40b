"""Optional local outputs: a buzzer and an LED (docs/spec.md §2), thin gpiozero wrappers.

Used for local confirmation ("your SOS was sent": a few beeps) and a steady LED once
the care centre acknowledges. ``blink`` runs in gpiozero's background thread.
"""
from __future__ import annotations

from typing import Any, Optional

from drivers.errors import WiringError


class _Output:
    def __init__(self, pin: int, *, active: str = "high", pin_factory: Any = None) -> None:
        from gpiozero import DigitalOutputDevice

        if active not in ("low", "high"):
            raise WiringError(f"{self.label} on GPIO{pin}: active {active!r} is not one of low, high")
        self.pin_number = pin
        self.active = active
        self._device: Any = None
        try:
            self._device = DigitalOutputDevice(pin, active_high=active == "high", initial_value=False,
                                               pin_factory=pin_factory)
        except Exception as exc:
            self.close()
            raise WiringError(f"{self.label}: cannot claim GPIO{pin} ({type(exc).__name__}: {exc})",
                              hint="check no sensor or other program uses that pin") from exc

    label = "output"

    @property
    def is_on(self) -> bool:
        return bool(self._device.is_active)

    def on(self) -> None:
        self._device.on()

    def off(self) -> None:
        self._device.off()

    def blink(self, on_time: float = 0.2, off_time: float = 0.2, n: Optional[int] = 3) -> None:
        """Switch on for ``on_time`` s and off for ``off_time`` s, ``n`` times (None: until off())."""
        self._device.blink(on_time=on_time, off_time=off_time, n=n, background=True)

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None

    def __repr__(self) -> str:
        state = "closed" if self._device is None else ("on" if self.is_on else "off")
        return f"<{type(self).__name__} GPIO{self.pin_number} active={self.active} {state}>"


class Buzzer(_Output):
    """An active buzzer (one with its own oscillator: it sounds on DC).

    Wiring: a 3.3 V buzzer drawing under 10 mA can go GPIO n -> buzzer -> GND
    (``active: high``). Anything louder needs a transistor or a buzzer module: module
    VCC to 5 V, GND to GND, IN to GPIO n; many modules switch on a low input
    (``active: low``). Example: ``Buzzer(5).blink(0.1, 0.1, n=3)`` beeps three times.
    """

    label = "buzzer"


class Led(_Output):
    """A status LED. Wiring: GPIO n -> 330 ohm resistor -> LED anode, cathode -> GND
    (``active: high``). Never without the resistor. Example: ``Led(6).on()``."""

    label = "led"

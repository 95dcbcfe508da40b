"""Smoke detector input: continuous or pulsed alarms, slow clearing.

Theory of operation
-------------------
Smoke alarms signal in two ways, and both must raise ``smoke.alarm``:

* ``continuous``: the input stays active for ``confirm_ms`` (1 s).
* ``pulsed``: an interconnect or relay repeats the temporal-3 / temporal-4 sounder
  pattern (0.5 s or 0.1 s on/off bursts with pauses). Each active run that lasts
  ``pulse_ms`` (50 ms) counts one pulse, *at the instant it reaches* ``pulse_ms``;
  ``pulses`` (3) counted within ``pulse_window_s`` (10 s) is an alarm.

An alarm clears only after the input has been continuously inactive for ``clear_ms``
(15 s): the gaps of a pulsed pattern never clear it. The start-up report for the
inactive level needs only ``pulse_ms`` of quiet (SPEC §3).

Timers due at the same instant fire in the order confirm, pulse, clear/start-up.
Flapping detection is off by default; if configured it reports ``sensor.flapping`` /
``sensor.recovered`` but suppresses nothing, since every smoke level event is critical.
"""
from __future__ import annotations

from collections import deque
from typing import Deque, Dict, List, Optional, Tuple

from .debounce import FlappingPolicy, Micros, check_window_ms, check_window_s
from .sensor import SensorCore, due_at, earliest

# phases
UNKNOWN, CLEAR, ALARM = "unknown", "clear", "alarm"

# inputs (timers)
QUIET = "quiet"          # start-up: inactive for pulse_ms
CONFIRM = "confirm"      # active continuously for confirm_ms
PULSES = "pulses"        # the pulses-th pulse within pulse_window_s
CLEARED = "cleared"      # inactive continuously for clear_ms

#: {phase: {input: new phase}}; anything missing is a bug and raises.
TRANSITIONS: Dict[str, Dict[str, str]] = {
    UNKNOWN: {QUIET: CLEAR, CONFIRM: ALARM, PULSES: ALARM},
    CLEAR: {CONFIRM: ALARM, PULSES: ALARM},
    ALARM: {CLEARED: CLEAR},
}

_PATTERN = {CONFIRM: "continuous", PULSES: "pulsed"}


class SmokeDetector(SensorCore):
    """A mains or battery smoke alarm, read through its relay or interconnect output.

    Wiring: **never connect a smoke alarm's interconnect wire (typically 9 V, sometimes
    mains-referenced) to a GPIO pin.** Use the alarm's relay module (dry contact) or an
    opto-isolator. Relay module: COM to GND, NO to GPIO n, config ``pull: up``,
    ``active: low`` (the default). Opto-isolator: its transistor's collector to GPIO n,
    emitter to GND, the LED side (with its series resistor) on the interconnect, same
    config. The input may be steady while the alarm sounds, or pulse with the sounder
    (temporal-3 / temporal-4); both are recognised.

    Example::

        smoke = SmokeDetector("kitchen_smoke")
        events = smoke.start(level=False, now=0.0)
        events += smoke.edge(True, now=5.0) + smoke.advance(now=6.0)   # -> smoke.alarm

    Parameters:

    * ``confirm_ms`` (int, default 1000): active continuously this long is an alarm
      (``pattern: continuous``).
    * ``pulse_ms`` (int, default 50): an active run this long counts as one pulse;
      shorter spikes (interference on a long cable) are ignored.
    * ``pulses`` (int, default 3) within ``pulse_window_s`` (seconds, default 10): that
      many pulses is an alarm (``pattern: pulsed``).
    * ``clear_ms`` (int, default 15000): inactive continuously this long clears an
      alarm (``smoke.cleared``).
    * ``flapping`` (:class:`FlappingPolicy` or None, default None = off).

    Events: ``smoke.alarm`` (critical; ``pattern``), ``smoke.cleared`` (critical);
    ``data.state`` ``alarm``/``clear``, the start-up one with ``data.initial``.
    """

    kind = "smoke"

    def __init__(self, name: str, *, confirm_ms: float = 1000, pulse_ms: float = 50,
                 pulses: int = 3, pulse_window_s: float = 10, clear_ms: float = 15000,
                 flapping: Optional[FlappingPolicy] = None) -> None:
        super().__init__(name, flapping=flapping)
        self._confirm_us = check_window_ms("confirm_ms", confirm_ms)
        self._pulse_us = check_window_ms("pulse_ms", pulse_ms)
        self._clear_us = check_window_ms("clear_ms", clear_ms)
        self._window_us = check_window_s("pulse_window_s", pulse_window_s)
        if isinstance(pulses, bool) or not isinstance(pulses, int) or pulses < 1:
            raise ValueError(f"pulses is {pulses!r}; it must be a whole number, at least 1")
        self._pulses = pulses
        self.phase = UNKNOWN
        self._since: Micros = 0            # when the raw level last changed
        self._counted = False              # this active run has already counted as a pulse
        self._pulse_times: Deque[Micros] = deque()

    # ----------------------------------------------------------------- the table
    def _step(self, event: str, t: Micros) -> None:
        try:
            new = TRANSITIONS[self.phase][event]
        except KeyError:
            raise RuntimeError(f"{self.name}: input {event!r} is illegal in phase {self.phase!r}") from None
        self.phase = new
        if new == ALARM:
            self._pulse_times.clear()
            data: Dict[str, object] = {"pattern": _PATTERN[event]}
            if event == PULSES:
                data["pulses"] = self._pulses
            self._report(t, "smoke.alarm", "alarm", data)
        else:
            self._report(t, "smoke.cleared", "clear")

    def _count_pulse(self, t: Micros) -> None:
        self._counted = True
        self._pulse_times.append(t)
        while self._pulse_times and self._pulse_times[0] <= t - self._window_us:
            self._pulse_times.popleft()
        if len(self._pulse_times) >= self._pulses:
            self._step(PULSES, t)

    # ------------------------------------------------------------ SensorCore hooks
    def _begin(self, level: bool, t: Micros) -> None:
        self._since = t
        self._counted = False

    def _raw_edge(self, level: bool, t: Micros) -> None:
        self._since = t
        self._counted = False

    def _timers(self) -> List[Tuple[Optional[Micros], str]]:
        if self._raw:
            if self.phase == ALARM:
                return []
            pulse = None if self._counted else self._since + self._pulse_us
            return [(self._since + self._confirm_us, CONFIRM), (pulse, PULSES)]
        if self.phase == UNKNOWN:
            return [(self._since + self._pulse_us, QUIET)]
        if self.phase == ALARM:
            return [(self._since + self._clear_us, CLEARED)]
        return []

    def _deadline(self) -> Optional[Micros]:
        return earliest(self._timers())

    def _fire(self, t: Micros) -> None:
        which = due_at(self.name, self._timers(), t)
        if which == PULSES:
            self._count_pulse(t)
        else:
            self._step(which, t)

    def _current_state(self) -> Optional[str]:
        return None if self.phase == UNKNOWN else self.phase

    def _catch_up(self, t: Micros) -> None:
        # Nothing is suppressed for smoke (all critical), so this only runs if a
        # subclass changes that; report the current phase plainly.
        if self.phase == ALARM:
            self._report(t, "smoke.alarm", "alarm", {"pattern": "continuous"})
        else:
            self._report(t, "smoke.cleared", "clear")

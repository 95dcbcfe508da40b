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
inactive level needs only ``pulse_ms`` of quiet (docs/spec.md §3).

Timers due at the same instant fire in the order confirm, pulse, clear/start-up,
wiring. Flapping detection is off by default; if configured it reports
``sensor.flapping`` / ``sensor.recovered`` but suppresses nothing, since every smoke
level event is critical.

Form C supervision (docs/spec.md §13.2, ``supervised=True``): the relay's NC contact
is a second input, fed with :meth:`SmokeDetector.edge_nc` (and ``start(..., nc=)``),
mapped to a logical level through the *same* ``active:`` as the NO contact. Healthy
wiring reads the two as opposite; "both equal" is debounced stable-for-N with
``wiring_fault_ms`` both ways (a relay's break-before-make changeover is a few ms of
"equal" and vanishes) and drives :data:`WIRING_TRANSITIONS`: ``sensor.fault``
(critical) when equal is accepted, ``sensor.recovered`` when opposite is accepted
again. The NC contact never touches the alarm decision, which follows NO alone.
"""
from __future__ import annotations

from collections import deque
from typing import Deque, Dict, List, Mapping, Optional, Tuple

from .debounce import Debouncer, FlappingPolicy, Micros, check_window_ms, check_window_s
from .events import SensorEvent
from .sensor import SensorCore, due_at, earliest

#: docs/spec.md §3 timing defaults (the config's defaults for ``kind: smoke``)
DEFAULTS: Mapping[str, float] = {"confirm_ms": 1000, "pulse_ms": 50, "pulses": 3,
                                 "pulse_window_s": 10.0, "clear_ms": 15000}
#: docs/spec.md §13.2 default (the config's default for ``wiring_fault_ms``)
WIRING_FAULT_MS = 2000

# phases
UNKNOWN, CLEAR, ALARM = "unknown", "clear", "alarm"

# inputs (timers)
QUIET = "quiet"          # start-up: inactive for pulse_ms
CONFIRM = "confirm"      # active continuously for confirm_ms
PULSES = "pulses"        # the pulses-th pulse within pulse_window_s
CLEARED = "cleared"      # inactive continuously for clear_ms
WIRING = "wiring"        # Form C: "NO equals NC" accepted after wiring_fault_ms (either way)

#: {phase: {input: new phase}}; anything missing is a bug and raises.
TRANSITIONS: Dict[str, Dict[str, str]] = {
    UNKNOWN: {QUIET: CLEAR, CONFIRM: ALARM, PULSES: ALARM},
    CLEAR: {CONFIRM: ALARM, PULSES: ALARM},
    ALARM: {CLEARED: CLEAR},
}

_PATTERN = {CONFIRM: "continuous", PULSES: "pulsed"}

# Form C wiring phases
WIRING_UNKNOWN, WIRING_OK, WIRING_FAULT = "unknown", "ok", "fault"

#: {wiring phase: {accepted "contacts equal": new phase}}; anything missing is a bug.
WIRING_TRANSITIONS: Dict[str, Dict[bool, str]] = {
    WIRING_UNKNOWN: {False: WIRING_OK, True: WIRING_FAULT},
    WIRING_OK: {True: WIRING_FAULT},
    WIRING_FAULT: {False: WIRING_OK},
}


class SmokeDetector(SensorCore):
    """A mains or battery smoke alarm, read through its relay or interconnect output.

    Wiring: **never connect a smoke alarm's interconnect wire (typically 9 V, sometimes
    mains-referenced) to a GPIO pin.** Use the alarm's relay module (dry contact) or an
    opto-isolator. Relay module: COM to GND, NO to GPIO n, config ``pull: up``,
    ``active: low`` (the default). Opto-isolator: its transistor's collector to GPIO n,
    emitter to GND, the LED side (with its series resistor) on the interconnect, same
    config. The input may be steady while the alarm sounds, or pulse with the sounder
    (temporal-3 / temporal-4); both are recognised.

    Supervised wiring (Form C relay, config ``pin_nc``): COM to GND, NO to GPIO n
    (``pin``), NC to GPIO m (``pin_nc``), both ``pull: up`` and the same ``active:``.
    Quiet, the NO pin reads high and the NC pin low; in an alarm the other way round.
    Both high (the COM wire cut, a dead relay) or both low (a shorted cable) for
    ``wiring_fault_ms`` is ``sensor.fault``: a cut cable no longer reads like "no smoke".

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
    * ``supervised`` (bool, default False): a Form C relay with ``pin_nc`` wired; then
      ``start()`` needs ``nc=`` and :meth:`edge_nc` takes the NC contact's edges.
    * ``wiring_fault_ms`` (int, default 2000): both contacts equal this long is a
      wiring fault; opposite again this long ends it.
    * ``active`` (``"low"`` or ``"high"``, default ``"low"``): the pins' ``active:``
      setting, only to report the pin levels in ``data.levels``.

    Events: ``smoke.alarm`` (critical; ``pattern``), ``smoke.cleared`` (critical);
    ``data.state`` ``alarm``/``clear``, the start-up one with ``data.initial``.
    Supervised: ``sensor.fault`` (critical; ``fault: wiring``, ``levels: {no, nc}`` as
    pin levels 0/1), ``sensor.recovered`` (``fault: wiring``, ``state``).
    """

    kind = "smoke"

    def __init__(self, name: str, *, confirm_ms: float = DEFAULTS["confirm_ms"],
                 pulse_ms: float = DEFAULTS["pulse_ms"], pulses: int = int(DEFAULTS["pulses"]),
                 pulse_window_s: float = DEFAULTS["pulse_window_s"],
                 clear_ms: float = DEFAULTS["clear_ms"],
                 flapping: Optional[FlappingPolicy] = None, supervised: bool = False,
                 wiring_fault_ms: float = WIRING_FAULT_MS, active: str = "low") -> None:
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
        wiring_us = check_window_ms("wiring_fault_ms", wiring_fault_ms, minimum=1)
        if active not in ("low", "high"):
            raise ValueError(f"active is {active!r}; it must be 'low' or 'high', as the pins' active: setting")
        self._active_high = active == "high"
        # "contacts equal" debounced; None without pin_nc
        self._wiring: Optional[Debouncer] = Debouncer(wiring_us, wiring_us) if supervised else None
        self.wiring_phase = WIRING_UNKNOWN
        self._nc: Optional[bool] = None

    # --------------------------------------------------------- Form C (§13.2) API
    @property
    def raw_nc(self) -> bool:
        """The last logical level seen on the NC contact (for the loop's re-read)."""
        if self._nc is None:
            raise RuntimeError(f"{self.name}: raw_nc read before start() or without pin_nc")
        return self._nc

    @property
    def wiring_fault(self) -> bool:
        """True while a reported wiring fault lasts."""
        return self.wiring_phase == WIRING_FAULT

    def start(self, level: bool, now: float, nc: Optional[bool] = None) -> List[SensorEvent]:
        """The logical levels present at start-up: NO (``level``) and, if supervised, NC."""
        if self._wiring is None:
            if nc is not None:
                raise ValueError(f"{self.name}: an NC level was given, but this smoke sensor has no pin_nc")
        elif nc is None:
            raise ValueError(f"{self.name}: this smoke sensor has pin_nc; start() needs the NC contact's "
                             "level too: start(level, now, nc=...)")
        else:
            self._nc = bool(nc)
        return super().start(level, now)

    def edge_nc(self, level: bool, now: float) -> List[SensorEvent]:
        """A raw edge of the NC contact to logical ``level``; repeats are ignored."""
        if self._wiring is None:
            raise RuntimeError(f"{self.name}: edge_nc() on a smoke sensor without pin_nc (supervised=False)")
        t = self._clock(now)
        self._run_until(t)
        level = bool(level)
        if level != self._nc:
            self._nc = level
            self._wiring.edge(self._raw == level, t)
            self._run_until(t)
        return self._drain()

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

    # ------------------------------------------------------------ Form C wiring
    def _on_wiring(self, t: Micros) -> None:
        assert self._wiring is not None and self._raw is not None and self._nc is not None
        equal = self._wiring.accept(t)
        old = self.wiring_phase
        try:
            self.wiring_phase = WIRING_TRANSITIONS[old][equal]
        except KeyError:
            raise RuntimeError(f"{self.name}: wiring input {equal} is illegal in phase {old!r}") from None
        if self.wiring_phase == WIRING_FAULT:
            levels = {"no": self._pin(self._raw), "nc": self._pin(self._nc)}
            self._emit(t, "sensor.fault", {"fault": "wiring", "levels": levels})
        elif old == WIRING_FAULT:
            self._emit(t, "sensor.recovered", {"state": self._current_state() or "unknown", "fault": "wiring"})

    def _pin(self, logical: bool) -> int:
        """The pin level (0/1) a technician would measure for a logical level."""
        return int(logical == self._active_high)

    # ------------------------------------------------------------ SensorCore hooks
    def _begin(self, level: bool, t: Micros) -> None:
        self._since = t
        self._counted = False
        if self._wiring is not None:
            self._wiring.start(level == self._nc, t)

    def _raw_edge(self, level: bool, t: Micros) -> None:
        self._since = t
        self._counted = False
        if self._wiring is not None:
            self._wiring.edge(level == self._nc, t)

    def _timers(self) -> List[Tuple[Optional[Micros], str]]:
        wiring = self._wiring.deadline() if self._wiring is not None else None
        return self._alarm_timers() + [(wiring, WIRING)]

    def _alarm_timers(self) -> List[Tuple[Optional[Micros], str]]:
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
        elif which == WIRING:
            self._on_wiring(t)
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

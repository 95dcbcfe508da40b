"""SOS button: debounce, optional hold time, short presses, stuck detection.

Theory of operation
-------------------
A :class:`~drivers.debounce.Debouncer` (``debounce_ms`` both ways) turns raw edges
into *accepted* presses and releases. Those, plus two timers, drive the table below:

* ``hold``: ``hold_ms`` after the accepted press. With ``hold_ms = 0`` it completes at
  the press itself. Only then is the press an alarm (``sos.pressed``); released
  earlier it is an ``sos.short_press``, never an alarm.
* ``stuck``: ``stuck_s`` (60 s) after the accepted press: ``sensor.stuck``; the release
  that ends it gives ``sensor.recovered`` (``state: released``) then ``sos.released``.

``held_ms`` is always accepted release minus accepted press, whatever ``hold_ms`` is.
Timers due at the same instant fire hold, then stuck, then the debounced release:
a window that completes at an instant counts as completed.

During flapping (docs/spec.md §3) only ``sos.pressed`` goes out: each press accepted
after an accepted release is one once its hold completes (the HOLDING -> PRESSED
step), at most one per flapping ``window_s`` (:class:`~drivers.sensor.SensorCore`
limits the repeats); ``short_press`` and ``released`` wait for the recovery, so two
``sos.pressed`` may follow each other.

Choices docs/spec.md leaves open: a short tap during start-up gives ``sos.short_press``
followed by the start-up report ``sos.released`` (``initial``). After a flapping
episode the catch-up ``sos.released`` carries the ``held_ms`` of the last accepted
press.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

from .debounce import (SOS_FLAPPING, Debouncer, FlappingPolicy, Micros, check_window_ms,
                       check_window_s)
from .sensor import SensorCore, due_at, earliest

#: docs/spec.md §3 timing defaults (the config's defaults for ``kind: sos_button``)
DEFAULTS: Mapping[str, float] = {"debounce_ms": 30, "hold_ms": 0}
#: seconds pressed before ``sensor.stuck`` (docs/spec.md §3); a hold must be shorter
STUCK_S = 60

# phases
UNKNOWN = "unknown"      # nothing accepted yet
RELEASED = "released"
HOLDING = "holding"      # accepted press, hold_ms not yet over
PRESSED = "pressed"      # an alarm: sos.pressed sent (or due)
STUCK = "stuck"          # pressed for stuck_s

# inputs
PRESS = "press"          # debounced press accepted
RELEASE = "release"      # debounced release accepted
HOLD_DONE = "hold_done"  # hold_ms after the press
STUCK_TIME = "stuck"     # stuck_s after the press

#: {phase: {input: new phase}}; anything missing is a bug and raises.
TRANSITIONS: Dict[str, Dict[str, str]] = {
    UNKNOWN: {PRESS: HOLDING, RELEASE: RELEASED},
    RELEASED: {PRESS: HOLDING},
    HOLDING: {HOLD_DONE: PRESSED, RELEASE: RELEASED},   # RELEASE here = short press
    PRESSED: {RELEASE: RELEASED, STUCK_TIME: STUCK},
    STUCK: {RELEASE: RELEASED},                          # + sensor.recovered
}

#: the state word each phase stands for (HOLDING is not an alarm yet)
STATE_WORD: Dict[str, Optional[str]] = {
    UNKNOWN: None, RELEASED: "released", HOLDING: "released", PRESSED: "pressed", STUCK: "pressed",
}


class SosButton(SensorCore):
    """The resident's emergency button.

    A push button (or pull cord) that closes a contact while pressed. A press is an
    alarm for the care centre (``sos.pressed``, critical) as soon as it has been
    steady for ``debounce_ms`` plus ``hold_ms``.

    Wiring (default config ``pull: up``, ``active: low``): one terminal of a
    normally-open (NO) button to GPIO n, the other to GND. The Pi's internal pull-up
    holds the pin high; pressing pulls it low. No resistor is needed. Never connect
    a button to 5 V: GPIO pins take 3.3 V at most. Long cable runs: use a shielded
    pair, or an opto-isolator and ``active: high`` as its output dictates.

    Example::

        sos = SosButton("sos", debounce_ms=30, hold_ms=0)
        events = sos.start(level=False, now=0.0)      # released at boot
        events += sos.edge(True, now=1.0) + sos.advance(now=1.03)   # -> sos.pressed

    Parameters (times in milliseconds unless the name says otherwise):

    * ``debounce_ms`` (int, default 30): how long the contact must stay put before a
      press or release is believed. Contact bounce (a few ms of toggling) vanishes.
    * ``hold_ms`` (int, default 0 = alarm at once): how long the resident must keep
      pressing before it counts as an alarm; shorter presses are ``sos.short_press``.
      Use e.g. 1000 where accidental brushes are common.
    * ``stuck_s`` (seconds, default 60): pressed this long means a jammed button or
      a shorted cable (``sensor.stuck``).
    * ``flapping`` (:class:`FlappingPolicy` or None, default 20 edges in 10 s, quiet
      60 s): a loose wire or a fiddling hand.

    Events: ``sos.pressed`` (critical), ``sos.released`` (``held_ms``),
    ``sos.short_press`` (``held_ms``), ``sensor.stuck`` (critical),
    ``sensor.flapping``, ``sensor.recovered`` (``state``, ``fault``). Level events carry
    ``data.state`` (``pressed``/``released``); the start-up one ``data.initial``.
    """

    kind = "sos_button"

    def __init__(self, name: str, *, debounce_ms: float = DEFAULTS["debounce_ms"],
                 hold_ms: float = DEFAULTS["hold_ms"],
                 stuck_s: float = STUCK_S, flapping: Optional[FlappingPolicy] = SOS_FLAPPING) -> None:
        super().__init__(name, flapping=flapping)
        debounce = check_window_ms("debounce_ms", debounce_ms)
        self._hold_us = check_window_ms("hold_ms", hold_ms)
        self._stuck_us = check_window_s("stuck_s", stuck_s)
        if self._hold_us >= self._stuck_us:
            raise ValueError(f"hold_ms ({hold_ms}) must be shorter than stuck_s ({stuck_s} s)")
        self._debouncer = Debouncer(debounce, debounce)
        self.phase = UNKNOWN
        self._press_at: Micros = 0
        self._release_at: Micros = 0

    # --------------------------------------------------------------- table driver
    def _step(self, event: str, t: Micros) -> str:
        try:
            new = TRANSITIONS[self.phase][event]
        except KeyError:
            raise RuntimeError(f"{self.name}: input {event!r} is illegal in phase {self.phase!r}") from None
        old, self.phase = self.phase, new
        return old

    def _held_ms(self) -> int:
        return int(round((self._release_at - self._press_at) / 1000))

    def _on_press(self, t: Micros) -> None:
        self._step(PRESS, t)
        self._press_at = t
        if self._hold_us == 0:
            self._on_hold_done(t)

    def _on_hold_done(self, t: Micros) -> None:
        self._step(HOLD_DONE, t)
        self._report(t, "sos.pressed", "pressed")

    def _on_stuck(self, t: Micros) -> None:
        self._step(STUCK_TIME, t)
        self._emit(t, "sensor.stuck", {"state": "pressed", "stuck_s": self._stuck_us / 1_000_000})

    def _on_release(self, t: Micros) -> None:
        old = self._step(RELEASE, t)
        self._release_at = t
        if old == UNKNOWN:
            self._report(t, "sos.released", "released")
        elif old == HOLDING:
            self._notice(t, "sos.short_press", {"held_ms": self._held_ms()})
            if self._reported is None:   # a tap during start-up: still owe the start-up report
                self._report(t, "sos.released", "released")
        else:
            if old == STUCK:
                self._emit(t, "sensor.recovered", {"state": "released", "fault": "stuck"})
            self._report(t, "sos.released", "released", {"held_ms": self._held_ms()})

    # ------------------------------------------------------------ SensorCore hooks
    def _begin(self, level: bool, t: Micros) -> None:
        self._debouncer.start(level, t)

    def _raw_edge(self, level: bool, t: Micros) -> None:
        self._debouncer.edge(level, t)

    def _timers(self) -> List[Tuple[Optional[Micros], str]]:
        hold = self._press_at + self._hold_us if self.phase == HOLDING else None
        stuck = self._press_at + self._stuck_us if self.phase == PRESSED else None
        return [(hold, HOLD_DONE), (stuck, STUCK_TIME), (self._debouncer.deadline(), "debounce")]

    def _deadline(self) -> Optional[Micros]:
        return earliest(self._timers())

    def _fire(self, t: Micros) -> None:
        which = due_at(self.name, self._timers(), t)
        if which == HOLD_DONE:
            self._on_hold_done(t)
        elif which == STUCK_TIME:
            self._on_stuck(t)
        elif self._debouncer.accept(t):
            self._on_press(t)
        else:
            self._on_release(t)

    def _current_state(self) -> Optional[str]:
        return STATE_WORD[self.phase]

    def _catch_up(self, t: Micros) -> None:
        if self.phase in (PRESSED, STUCK):
            self._report(t, "sos.pressed", "pressed")
        else:
            data = {"held_ms": self._held_ms()} if self._reported is not None else {}
            self._report(t, "sos.released", "released", data)

"""Motion sensor (PIR): activity for the care rules, and nothing else unless asked.

Theory of operation
-------------------
One :class:`~drivers.debounce.Debouncer`: motion is accepted after ``debounce_ms``
(100 ms) of active level, no motion after ``hold_s`` (30 s) of inactive level, so
the PIR's pulses while someone moves about merge into one stretch of motion.

Each accepted start of motion, and every ``report_every_s`` (300 s) while it lasts,
makes a ``motion.detected`` (normal, ``data.state: motion``). Where it goes
(docs/spec.md §14.4, privacy and load):

* ``report: false`` (default): nowhere but :meth:`MotionSensor.drain_activity`,
  which the loop feeds to the care rules. ``start``/``edge``/``advance`` return
  nothing at all: no start-up report, no flapping events.
* ``report: true``: returned for sending, at most one per ``report_every_s``; one
  inside that time (motion that stopped and started again) goes to
  ``drain_activity`` instead. Flapping events are sent; there is no
  ``motion.ended`` and no start-up report.

So every ``motion.detected`` appears exactly once: either returned (send it and
feed it to the rules) or drained (feed it to the rules only). Flapping, when
configured (off by default: a PIR pulses by nature), never holds back motion.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

from .debounce import Debouncer, FlappingPolicy, Micros, check_window_ms, check_window_s, to_seconds
from .events import SensorEvent
from .sensor import SensorCore, Timers, due_at, earliest

UNKNOWN, STILL, MOTION = "unknown", "still", "motion"

#: the timing defaults (the config's too); ``report`` is on/off, not a time
DEFAULTS: Mapping[str, float] = {"debounce_ms": 100, "hold_s": 30, "report": False,
                                 "report_every_s": 300}

#: {phase: {accepted level: new phase}}; the debouncer reports only changes.
TRANSITIONS: Dict[str, Dict[bool, str]] = {
    UNKNOWN: {True: MOTION, False: STILL},
    STILL: {True: MOTION},
    MOTION: {False: STILL},
}


class MotionSensor(SensorCore):
    """A passive-infrared (PIR) motion detector in the living area.

    Wiring (default config ``pull: down``, ``active: high``): a 3.3 V-output module
    such as the HC-SR501 -- VCC to 5 V (pin 2), GND to GND, OUT to GPIO n; OUT goes
    high on motion. Set the module's own hold time short (its trimmer fully
    anticlockwise, ~3 s) and its jumper to repeat trigger: ``hold_s`` does the
    holding. An alarm PIR with a relay output: wire the relay's *dry* contacts only,
    never its 12 V side to a GPIO pin. A normally-closed relay between GPIO n and
    GND with ``pull: up`` and ``active: high`` reads a cut wire as motion (fails
    safe); an open-collector output to GPIO n needs ``pull: up``, ``active: low``.

    Example::

        pir = MotionSensor("hall", debounce_ms=100, hold_s=30)
        pir.start(level=False, now=0.0); pir.edge(True, now=60.0); pir.advance(now=60.1)
        activity = pir.drain_activity()                 # -> [motion.detected at 60.1]

    Parameters:

    * ``debounce_ms`` (int, default 100): motion must be seen this long before it
      counts; shorter spikes (interference, a relay's bounce) are ignored.
    * ``hold_s`` (seconds, default 30): no motion for this long ends the stretch of
      motion; someone moving about keeps it going.
    * ``report`` (bool, default False): send ``motion.detected`` to the care centre;
      off, motion only counts as activity for the care rules and nothing is sent.
    * ``report_every_s`` (seconds, default 300): the most one ``motion.detected`` in
      this time; also how often continuing motion counts again as activity.
    * ``flapping`` (:class:`FlappingPolicy` or None, default None = off).

    Events: ``motion.detected`` (``data.state: motion``), and with ``report`` also
    ``sensor.flapping`` / ``sensor.recovered``.
    """

    kind = "motion"

    def __init__(self, name: str, *, debounce_ms: float = DEFAULTS["debounce_ms"],
                 hold_s: float = DEFAULTS["hold_s"], report: bool = False,
                 report_every_s: float = DEFAULTS["report_every_s"],
                 flapping: Optional[FlappingPolicy] = None) -> None:
        super().__init__(name, flapping=flapping)
        if not isinstance(report, bool):
            raise ValueError(f"report is {report!r}; it must be true or false")
        self._debouncer = Debouncer(check_window_ms("debounce_ms", debounce_ms),
                                    check_window_s("hold_s", hold_s))
        self.report = report
        self._every_us = check_window_s("report_every_s", report_every_s)
        self.phase = UNKNOWN
        self._repeat_at: Optional[Micros] = None
        self._last_sent: Optional[Micros] = None
        self._activity: List[SensorEvent] = []

    @property
    def state(self) -> str:
        """``motion``, ``still`` or ``unknown`` (nothing is reported, so not the last report)."""
        return self._current_state() or "unknown"

    def drain_activity(self) -> List[SensorEvent]:
        """The ``motion.detected`` not returned for sending, for the care rules only."""
        out, self._activity = self._activity, []
        return out

    # ------------------------------------------------------------ SensorCore hooks
    def _timers(self) -> Timers:
        # the debounced level first: no motion accepted at the repeat instant cancels it
        return [(self._debouncer.deadline(), "accept"), (self._repeat_at, "repeat")]

    def _begin(self, level: bool, t: Micros) -> None:
        self._debouncer.start(level, t)

    def _raw_edge(self, level: bool, t: Micros) -> None:
        self._debouncer.edge(level, t)

    def _deadline(self) -> Optional[Micros]:
        return earliest(self._timers())

    def _fire(self, t: Micros) -> None:
        if due_at(self.name, self._timers(), t) == "repeat":
            self._detected(t)
            return
        level = self._debouncer.accept(t)
        try:
            self.phase = TRANSITIONS[self.phase][level]
        except KeyError:
            raise RuntimeError(f"{self.name}: accepted level {level} is illegal in phase {self.phase!r}") from None
        if self.phase == MOTION:
            self._detected(t)
        else:
            self._repeat_at = None

    def _current_state(self) -> Optional[str]:
        return None if self.phase == UNKNOWN else self.phase

    def _catch_up(self, t: Micros) -> None:
        """No level events to catch up: motion is never held back."""

    def _emit(self, t: Micros, event_type: str, data: Mapping[str, Any]) -> None:
        if self.report:  # flapping / recovered: sent only when reporting at all
            super()._emit(t, event_type, data)

    # ------------------------------------------------------------------ internals
    def _detected(self, t: Micros) -> None:
        self._repeat_at = t + self._every_us
        if self.report and (self._last_sent is None or t - self._last_sent >= self._every_us):
            self._last_sent = t
            super()._emit(t, "motion.detected", {"state": MOTION})
        else:
            self._activity.append(SensorEvent("motion.detected", self.name, to_seconds(t),
                                              {"state": MOTION}))

"""Door contact: asymmetric stable-for-N debouncing.

Theory of operation
-------------------
One :class:`~drivers.debounce.Debouncer` with ``open_ms`` for the active (open) level
and ``close_ms`` for the inactive (closed) one. Each accepted level is reported; wind
rattle (a door moving a few millimetres in its frame) produces pulses shorter than
``open_ms`` and vanishes. Flapping (default 16 edges in 10 s) holds the reports back
until 60 s of quiet (see :mod:`drivers.sensor`).
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

from .debounce import DOOR_FLAPPING, Debouncer, FlappingPolicy, Micros, check_window_ms
from .sensor import SensorCore

#: docs/spec.md §3 timing defaults (the config's defaults for ``kind: door``)
DEFAULTS: Mapping[str, float] = {"open_ms": 500, "close_ms": 1000}

UNKNOWN, CLOSED, OPEN = "unknown", "closed", "open"

#: {phase: {accepted level: new phase}}; the debouncer only reports changes, so a
#: missing entry (e.g. OPEN accepting open again) is a bug and raises.
TRANSITIONS: Dict[str, Dict[bool, str]] = {
    UNKNOWN: {True: OPEN, False: CLOSED},
    CLOSED: {True: OPEN},
    OPEN: {False: CLOSED},
}

#: phase -> (event type, state word)
REPORTS: Dict[str, Tuple[str, str]] = {
    OPEN: ("door.opened", "open"),
    CLOSED: ("door.closed", "closed"),
}


class DoorContact(SensorCore):
    """A magnetic reed contact on the front door (or a window).

    Wiring (default config ``pull: up``, ``active: high``): use a *normally closed*
    (NC) reed switch, closed while the magnet is near (door shut). One wire to GPIO n,
    the other to GND; the internal pull-up makes the pin high when the contact opens.
    So high means open *or the wire is cut*, which fails safe: a cut cable reads as
    "open" instead of hiding a door that opens. With an NO contact, set ``active: low``
    (then a cut wire reads as closed: avoid). Keep the cable away from mains wiring.

    Example::

        door = DoorContact("front_door", open_ms=500, close_ms=1000)
        events = door.start(level=False, now=0.0)     # closed at boot
        events += door.advance(now=1.0)                # -> door.closed (initial)

    Parameters:

    * ``open_ms`` (int, default 500): the contact must stay open this long before
      ``door.opened``; shorter openings (wind rattle) are ignored.
    * ``close_ms`` (int, default 1000): it must stay closed this long before
      ``door.closed``; a door swinging back and bouncing on its frame counts once.
    * ``flapping`` (:class:`FlappingPolicy` or None, default 16 edges in 10 s, quiet
      60 s): a loose magnet or a wire about to break.

    Events: ``door.opened``, ``door.closed`` (``data.state`` ``open``/``closed``; the
    start-up one with ``data.initial``), ``sensor.flapping``, ``sensor.recovered``.
    """

    kind = "door"

    def __init__(self, name: str, *, open_ms: float = DEFAULTS["open_ms"],
                 close_ms: float = DEFAULTS["close_ms"],
                 flapping: Optional[FlappingPolicy] = DOOR_FLAPPING) -> None:
        super().__init__(name, flapping=flapping)
        self._debouncer = Debouncer(check_window_ms("open_ms", open_ms),
                                    check_window_ms("close_ms", close_ms))
        self.phase = UNKNOWN

    def _begin(self, level: bool, t: Micros) -> None:
        self._debouncer.start(level, t)

    def _raw_edge(self, level: bool, t: Micros) -> None:
        self._debouncer.edge(level, t)

    def _deadline(self) -> Optional[Micros]:
        return self._debouncer.deadline()

    def _fire(self, t: Micros) -> None:
        level = self._debouncer.accept(t)
        try:
            self.phase = TRANSITIONS[self.phase][level]
        except KeyError:
            raise RuntimeError(f"{self.name}: accepted level {level} is illegal in phase {self.phase!r}") from None
        self._report(t, *REPORTS[self.phase])

    def _current_state(self) -> Optional[str]:
        return REPORTS[self.phase][1] if self.phase in REPORTS else None

    def _catch_up(self, t: Micros) -> None:
        self._report(t, *REPORTS[self.phase])

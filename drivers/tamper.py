"""Enclosure tamper switch, with the maintenance mode of docs/spec.md §13.4.

Theory of operation
-------------------
A :class:`~drivers.contact.TwoStateContact`: open for ``open_ms`` (200 ms) gives
``tamper.opened`` (critical), closed for ``close_ms`` (1 s) ``tamper.closed``. A knock on
the box (the lever bouncing for a few ms) vanishes in the debouncer.

Maintenance is the agent's state, not the switch's: the loop owns the period (the
command, its expiry timer, its persistence) and tells every tamper switch with
:meth:`TamperSwitch.set_maintenance` when it starts and ends, so the switch's events
come out with the right priority and the rule "an alarm is opened by a *critical*
``tamper.opened``" needs no second look at the maintenance state. While on, tamper
events are ``normal`` and carry ``data.maintenance = true``.

Special case beside the table: when maintenance ends while the enclosure is still
open (the technician left the lid off), the switch sends ``tamper.opened`` again,
critical, with ``data.maintenance_ended = true``: otherwise an open box would never
raise an alarm, since no further edge is coming.
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, Mapping, Optional

from .contact import ACTIVE, TwoStateContact
from .debounce import FlappingPolicy, Micros, check_window_ms
from .events import SensorEvent, is_critical

#: docs/spec.md §13.1 timing defaults (the config's defaults for ``kind: tamper``)
DEFAULTS: Mapping[str, float] = {"open_ms": 200, "close_ms": 1000}

OPENED, CLOSED = "tamper.opened", "tamper.closed"


class TamperSwitch(TwoStateContact):
    """A microswitch that notices the gateway's enclosure (or a sensor's lid) being opened.

    Wiring (default config ``pull: up``, ``active: high``): a lever microswitch mounted
    so that the closed lid holds its lever down. Use its **COM** and **NO** terminals:
    COM to GND, NO to GPIO n. With the lid shut the pressed switch connects the pin to
    GND (low); opening the lid releases the lever, the contact opens and the internal
    pull-up makes the pin high: ``tamper.opened``. A cut wire also reads high, so
    cutting the tamper loop is itself a tamper alarm. No resistor is needed; never
    connect the switch to 5 V (GPIO pins take 3.3 V at most). A ready-made tamper
    output that is *closed* when secure wires the same way; one that is open when
    secure needs ``active: low`` (then a cut wire reads as shut: avoid).

    Example::

        lid = TamperSwitch("enclosure")
        events = lid.start(level=False, now=0.0)      # shut at boot
        events += lid.advance(now=1.0)                 # -> tamper.closed (initial)

    Parameters (milliseconds):

    * ``open_ms`` (int, default 200): open this long is ``tamper.opened``; a knock on
      the box is shorter.
    * ``close_ms`` (int, default 1000): shut this long is ``tamper.closed``.
    * ``flapping`` (:class:`FlappingPolicy` or None, default None = off).

    :meth:`set_maintenance` (``on``, ``now``): the agent's maintenance period started
    or ended (docs/spec.md §13.4).

    Events: ``tamper.opened`` (critical; normal during maintenance), ``tamper.closed``;
    ``data.state`` ``open``/``closed``, the start-up one with ``data.initial``,
    ``data.maintenance`` during maintenance, ``data.maintenance_ended`` on the
    re-raise described in the module docstring.
    """

    kind = "tamper"
    ACTIVE_REPORT = (OPENED, "open")
    INACTIVE_REPORT = (CLOSED, "closed")

    def __init__(self, name: str, *, open_ms: float = DEFAULTS["open_ms"],
                 close_ms: float = DEFAULTS["close_ms"], flapping: Optional[FlappingPolicy] = None) -> None:
        super().__init__(name, active_us=check_window_ms("open_ms", open_ms),
                         inactive_us=check_window_ms("close_ms", close_ms), flapping=flapping)
        self._maintenance = False

    @property
    def maintenance(self) -> bool:
        """True while the agent's maintenance period lasts (as last set)."""
        return self._maintenance

    def set_maintenance(self, on: bool, now: float) -> List[SensorEvent]:
        """The maintenance period started (``on``) or ended at ``now``.

        May be called before :meth:`start` (a restart during a period): the start-up
        report then goes out as normal. Timers due at ``now`` run first, so a window
        that completes at that instant is judged by the old setting.
        """
        on = bool(on)
        if not self.started:
            self._maintenance = on
            return []
        out = self.advance(now)
        if on != self._maintenance:
            self._maintenance = on
            if not on and self.phase == ACTIVE:
                self._reraise_open(self._now_us())
        return out + self._drain()

    def __repr__(self) -> str:
        return super().__repr__()[:-1] + (" maintenance>" if self._maintenance else ">")

    # ------------------------------------------------------------------ internals
    def _now_us(self) -> Micros:
        assert self._now is not None
        return self._now

    def _reraise_open(self, t: Micros) -> None:
        if self._reported == "open":   # sent as normal during maintenance: repeat it, critical
            self._emit(t, OPENED, {"state": "open", "maintenance_ended": True})
        else:                          # held back by flapping: report it now
            self._report(t, OPENED, "open", {"maintenance_ended": True})

    def _critical(self, event_type: str) -> bool:
        if self._maintenance and event_type == OPENED:
            return False
        return is_critical(event_type)

    def _level_data(self, phase: str) -> Mapping[str, Any]:
        return {"maintenance": True} if self._maintenance else {}

    def _passes_flapping(self, event_type: str) -> bool:
        return self._critical(event_type)

    def _emit(self, t: Micros, event_type: str, data: Mapping[str, Any]) -> None:
        # SensorCore takes the priority from the type; maintenance lowers it here.
        super()._emit(t, event_type, data)
        if not self._critical(event_type) and self._out[-1].critical:
            self._out[-1] = dataclasses.replace(self._out[-1], critical=False)


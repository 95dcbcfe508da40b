"""Local feedback for the resident: buzzer and LED (docs/spec.md §2), works offline.

The resident should know that help is coming:

==========================  ==============================  ===================
moment                      LED                             buzzer
==========================  ==============================  ===================
SOS recorded (on disk)      fast blink ("alarm pending")    a few short chirps
its PUBACK arrived          slow blink ("sent")             —
care centre sent ``ack``    steady on                       silent
``locate`` command          —                               beeps for a few s
events cannot be stored     short flash every 2 s (idle)    two long beeps
==========================  ==============================  ===================

A smoke alarm drives the same pattern. Nothing here needs the network: the chirp and
the fast blink start as soon as the alarm is safely on disk, even with the broker down.

When the state directory cannot be written (docs/spec.md §6) alarms are kept in memory
and feedback goes on as usual: the chirp and the blinks follow the alarm as above
(its row id is then the memory buffer's negative key, and :meth:`Feedback.stored`
gives the outbox row it moves to later). In addition the buzzer sounds ``fault`` once
when storing fails, and while no alarm is open the LED shows ``fault_led`` instead of
staying dark, so a visitor can see that the gateway needs looking after.

Theory of operation
-------------------
Every ``sos.pressed`` / ``smoke.alarm`` that is recorded becomes an *open alarm*
(its event ``jti`` and outbox row id). A PUBACK for its row marks it *sent*. An ``ack``
command closes the alarm it names (``in_reply_to``), or every open alarm when it names
none. The LED shows the least advanced open alarm: ``pending`` while any is not yet
delivered, ``sent`` when all are delivered, ``acknowledged`` (steady) once the last one
is closed. Any accepted ``ack`` for an alarm we know silences the buzzer. An ``ack``
naming an event this agent does not know (e.g. from before a restart) changes nothing.

==============  ============================  ==================================
phase           entered when                  LED
==============  ============================  ==================================
idle            start                         off
pending         an alarm is recorded          blinks ``patterns.pending``
sent            every open alarm has PUBACK   blinks ``patterns.sent``
acknowledged    the last open alarm is acked  steady on (until the next alarm)
==============  ============================  ==================================

Outputs are optional: with neither configured this object still tracks the alarm (for
``status``) and does nothing else. ``buzzer`` and ``led`` are anything with ``on()``,
``off()``, ``blink(on_s, off_s, n)`` and ``close()`` (:mod:`drivers.outputs`).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Dict, FrozenSet, Mapping, Optional, Sequence, Tuple

log = logging.getLogger("agent.feedback")

ALARM_TYPES = ("sos.pressed", "smoke.alarm")
#: longest on or off time of a pattern, in seconds
MAX_PATTERN_S = 60.0
#: most repetitions of a chirp or locate pattern
MAX_PATTERN_COUNT = 1000


def _check_times(name: str, on_s: float, off_s: float) -> None:
    for what, value in (("on", on_s), ("off", off_s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or not 0 < value <= MAX_PATTERN_S:
            raise ValueError(f"pattern {name}: {what} time {value!r} must be a number of "
                             f"seconds above 0 and at most {MAX_PATTERN_S:g}")


@dataclass(frozen=True)
class Patterns:
    """Blink timings: ``(on_s, off_s)`` repeat until changed; ``(on_s, off_s, n)`` n times.

    Defaults: pending 0.1/0.1 s (fast blink), sent 0.5/1.5 s (slow blink), chirp three
    0.08 s beeps, locate ten 0.2 s beeps; storage failure: ``fault`` two 0.6 s beeps,
    ``fault_led`` a 0.05 s flash every 2 s. Config: ``outputs.patterns``.
    """

    pending: Tuple[float, float] = (0.1, 0.1)
    sent: Tuple[float, float] = (0.5, 1.5)
    chirp: Tuple[float, float, int] = (0.08, 0.12, 3)
    locate: Tuple[float, float, int] = (0.2, 0.3, 10)
    fault: Tuple[float, float, int] = (0.6, 0.3, 2)
    fault_led: Tuple[float, float] = (0.05, 1.95)

    def __post_init__(self) -> None:
        for name in ("pending", "sent", "fault_led"):
            value = getattr(self, name)
            if len(value) != 2:
                raise ValueError(f"pattern {name} is [on_s, off_s], not {list(value)!r}")
            _check_times(name, *value)
        for name in ("chirp", "locate", "fault"):
            value = getattr(self, name)
            if len(value) != 3:
                raise ValueError(f"pattern {name} is [on_s, off_s, count], not {list(value)!r}")
            _check_times(name, value[0], value[1])
            count = value[2]
            if isinstance(count, bool) or not isinstance(count, int) \
                    or not 1 <= count <= MAX_PATTERN_COUNT:
                raise ValueError(f"pattern {name}: count {count!r} must be a whole number "
                                 f"from 1 to {MAX_PATTERN_COUNT}")


class Feedback:
    """Follows the open alarms from recorded to sent to acknowledged (module docstring)."""

    def __init__(self, *, buzzer: Any = None, led: Any = None,
                 patterns: Patterns = Patterns()) -> None:
        self.buzzer = buzzer
        self.led = led
        self.patterns = patterns
        #: open alarms: event jti -> (its row ids: memory and/or outbox, delivered?)
        self._open: Dict[str, Tuple[FrozenSet[int], bool]] = {}
        self.storage_failed = False
        #: the most recent alarm (for ``status``)
        self.alarm_jti: Optional[str] = None
        self.phase = "idle"           # idle | pending | sent | acknowledged

    def recorded(self, events: Sequence[Any], row_ids: Mapping[str, int]) -> None:
        """Events just committed to the outbox or, when it cannot be written, held in
        memory (``row_ids``: jti -> row id; negative for memory)."""
        new_alarm = False
        for event in events:
            if event.type in ALARM_TYPES:
                row = row_ids.get(event.jti)
                self._open[event.jti] = (frozenset(() if row is None else (row,)), False)
                self.alarm_jti = event.jti
                new_alarm = True
        if new_alarm:
            if self.buzzer is not None:
                on, off, n = self.patterns.chirp
                self.buzzer.blink(on, off, n)
            self._update()

    def delivered(self, row_ids: Sequence[int]) -> None:
        """The broker PUBACKed these outbox rows."""
        done = set(row_ids)
        changed = False
        for jti, (rows, sent) in self._open.items():
            if not sent and rows & done:
                self._open[jti] = (rows, True)
                changed = True
        if changed:
            self._update()

    def stored(self, row_ids: Mapping[str, int]) -> None:
        """Alarms held in memory are now outbox rows too (``row_ids``: jti -> row id)."""
        for jti, row in row_ids.items():
            if jti in self._open:
                rows, sent = self._open[jti]
                self._open[jti] = (rows | {row}, sent)

    def storage(self, failed: bool) -> None:
        """Events can (False) or cannot (True) be stored: the fault pattern."""
        if failed == self.storage_failed:
            return
        self.storage_failed = failed
        if failed:
            log.warning("local feedback: storage fault")
            if self.buzzer is not None:
                on, off, n = self.patterns.fault
                self.buzzer.blink(on, off, n)
        if self.phase in ("idle", "acknowledged") and not self._open:
            self._set(self.phase)       # the LED shows the fault, or stops showing it

    def ack(self, in_reply_to: Optional[str]) -> None:
        """The care centre has seen an alarm (``in_reply_to`` None: every open one)."""
        if in_reply_to is None:
            closed = list(self._open)
        elif in_reply_to in self._open:
            closed = [in_reply_to]
        else:
            log.info("ack for %s, which is not an open alarm; ignored", in_reply_to)
            return
        if not closed:
            log.info("ack with no open alarm; ignored")
            return
        for jti in closed:
            del self._open[jti]
        if self.buzzer is not None:
            self.buzzer.off()
        self._update(acknowledged=not self._open)

    def locate(self) -> None:
        if self.buzzer is not None:
            on, off, n = self.patterns.locate
            self.buzzer.blink(on, off, n)

    def snapshot(self) -> Dict[str, Any]:
        return {"phase": self.phase, "alarm_jti": self.alarm_jti, "open_alarms": len(self._open),
                "storage_failed": self.storage_failed}

    def _update(self, *, acknowledged: bool = False) -> None:
        if self._open:
            phase = "sent" if all(sent for _, sent in self._open.values()) else "pending"
        else:
            phase = "acknowledged" if acknowledged else self.phase
        if phase != self.phase:
            self._set(phase)

    def _set(self, phase: str) -> None:
        log.info("local feedback: %s", phase)
        self.phase = phase
        if self.led is None:
            return
        if phase == "pending":
            self.led.blink(*self.patterns.pending, n=None)
        elif phase == "sent":
            self.led.blink(*self.patterns.sent, n=None)
        elif phase == "acknowledged":
            self.led.on()
        elif self.storage_failed:
            self.led.blink(*self.patterns.fault_led, n=None)
        else:
            self.led.off()

    def close(self) -> None:
        for output in (self.buzzer, self.led):
            if output is not None:
                output.close()

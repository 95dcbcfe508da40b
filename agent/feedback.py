"""Local feedback for the resident: buzzer and LED (SPEC.md section 2), works offline.

The resident should know that help is coming:

==========================  ==============================  ===================
moment                      LED                             buzzer
==========================  ==============================  ===================
SOS recorded (on disk)      fast blink ("alarm pending")    three short chirps
its PUBACK arrived          slow blink ("sent")             —
care centre sent ``ack``    steady on                       silent
``locate`` command          —                               beeps for a few s
==========================  ==============================  ===================

A smoke alarm drives the same pattern. Outputs are optional: with neither configured
this object still tracks the alarm (for ``status``) and does nothing else.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

log = logging.getLogger("agent.feedback")

ALARM_TYPES = ("sos.pressed", "smoke.alarm")


@dataclass(frozen=True)
class Patterns:
    """Blink timings in seconds (on, off)."""

    pending: Tuple[float, float] = (0.1, 0.1)
    sent: Tuple[float, float] = (0.5, 1.5)
    chirp: Tuple[float, float, int] = (0.08, 0.12, 3)
    locate: Tuple[float, float, int] = (0.2, 0.3, 10)


class Feedback:
    """Follows the current alarm from recorded to sent to acknowledged."""

    def __init__(self, *, buzzer: Any = None, led: Any = None,
                 patterns: Patterns = Patterns()) -> None:
        self.buzzer = buzzer
        self.led = led
        self.patterns = patterns
        self.alarm_jti: Optional[str] = None
        self.alarm_row: Optional[int] = None
        self.phase = "idle"           # idle | pending | sent | acknowledged

    def recorded(self, events: Sequence[Any], row_ids: Mapping[str, int]) -> None:
        for event in events:
            if event.type in ALARM_TYPES:
                self.alarm_jti, self.alarm_row = event.jti, row_ids.get(event.jti)
                self._set("pending")
                if self.buzzer is not None:
                    on, off, n = self.patterns.chirp
                    self.buzzer.blink(on, off, n)

    def delivered(self, row_ids: Sequence[int]) -> None:
        if self.phase == "pending" and self.alarm_row is not None and self.alarm_row in row_ids:
            self._set("sent")

    def ack(self, in_reply_to: Optional[str]) -> None:
        """The care centre has seen the alarm (``in_reply_to`` None: the current one)."""
        if self.alarm_jti is None or in_reply_to not in (None, self.alarm_jti):
            log.info("ack for %s, which is not the current alarm; ignored", in_reply_to)
            return
        self._set("acknowledged")
        if self.buzzer is not None:
            self.buzzer.off()

    def locate(self) -> None:
        if self.buzzer is not None:
            on, off, n = self.patterns.locate
            self.buzzer.blink(on, off, n)

    def snapshot(self) -> Dict[str, Any]:
        return {"phase": self.phase, "alarm_jti": self.alarm_jti}

    def _set(self, phase: str) -> None:
        self.phase = phase
        if self.led is None:
            return
        if phase == "pending":
            self.led.blink(*self.patterns.pending, n=None)
        elif phase == "sent":
            self.led.blink(*self.patterns.sent, n=None)
        elif phase == "acknowledged":
            self.led.on()
        else:
            self.led.off()

    def close(self) -> None:
        for output in (self.buzzer, self.led):
            if output is not None:
                output.close()

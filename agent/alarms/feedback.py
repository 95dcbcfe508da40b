"""Local feedback for the resident: buzzer and LED (docs/spec.md §2), works offline.

The resident should know that help is coming:

==========================  ==============================  ===================
moment                      LED                             buzzer
==========================  ==============================  ===================
alarm recorded (on disk)    fast blink ("alarm pending")    a few short chirps
its PUBACK arrived          slow blink ("sent")             —
no ``ack`` in time (§11)    as before                       ``escalate`` beeps
care centre sent ``ack``    steady on                       silent
``locate`` command          —                               beeps for a few s
events cannot be stored     short flash every 2 s (idle)    two long beeps
==========================  ==============================  ===================

Every alarm-opening event (``agent.alarms.book.OPENING_TYPES``) drives the same pattern. Nothing
here needs the network: the chirp and the fast blink start as soon as the alarm is
safely on disk, even with the broker down, and the reminders come offline too.

When the state directory cannot be written (docs/spec.md §6) alarms are kept in memory
and feedback goes on as usual: the chirp and the blinks follow the alarm as above
(its row id is then the memory buffer's negative key, and :meth:`Feedback.stored`
gives the outbox row it moves to later). In addition the buzzer sounds ``fault`` once
when storing fails, and while no alarm is open the LED shows ``fault_led`` instead of
staying dark, so a visitor can see that the gateway needs looking after.

Theory of operation
-------------------
The open alarms are the alarm book's (:mod:`agent.alarms.book`, docs/spec.md §11): one
source of truth for the LED, ``status`` and the reminders. This module feeds the book
(a committed alarm-opening event opens an alarm under its outbox row; a PUBACK of that
row makes it *sent*; an accepted ``ack`` closes what it names; the jti of each committed
``alarm.unacknowledged`` is told to the book), saves it after each change (the store it
is given), and drives the outputs. ``tamper.opened`` opens an alarm only when critical,
that is outside maintenance (drivers/tamper.py gives it ``normal`` during one).

The LED shows :meth:`AlarmBook.led_phase`: ``pending`` while any open alarm is not yet
delivered, ``sent`` when all are delivered, ``acknowledged`` (steady) once the last one
is closed, off before any alarm. A new alarm chirps; each reminder plays ``escalate``
on the buzzer, so that people in the home hear that nobody has answered; an accepted
``ack`` that closed an alarm silences the buzzer. An ``ack`` naming an event the book
does not know changes nothing.

==============  ============================  ==================================
phase           entered when                  LED
==============  ============================  ==================================
idle            start, no open alarm          off
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
from datetime import datetime, timezone
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from agent.alarms.book import REMINDER_TYPE, Acknowledged, AlarmBook, Reminder
from agent.rules.activity import WARN_PATTERN

log = logging.getLogger("agent.feedback")
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


#: the patterns played a number of times, ``[on_s, off_s, count]``
COUNTED = ("chirp", "locate", "fault", "escalate", "warn")


@dataclass(frozen=True)
class Patterns:
    """Blink timings: ``(on_s, off_s)`` repeat until changed; ``(on_s, off_s, n)`` n times.

    Defaults: pending 0.1/0.1 s (fast blink), sent 0.5/1.5 s (slow blink), chirp three
    0.08 s beeps, locate ten 0.2 s beeps, escalate ten 0.5 s beeps (each
    ``alarm.unacknowledged``); storage failure: ``fault`` two 0.6 s beeps,
    ``fault_led`` a 0.05 s flash every 2 s. Config: ``outputs.patterns``.
    """

    pending: Tuple[float, float] = (0.1, 0.1)
    sent: Tuple[float, float] = (0.5, 1.5)
    chirp: Tuple[float, float, int] = (0.08, 0.12, 3)
    locate: Tuple[float, float, int] = (0.2, 0.3, 10)
    fault: Tuple[float, float, int] = (0.6, 0.3, 2)
    fault_led: Tuple[float, float] = (0.05, 1.95)
    escalate: Tuple[float, float, int] = (0.5, 0.5, 10)
    #: played while an inactivity warning lasts (docs/spec.md §14.1): rounds of ``count``
    #: beeps, repeated until it is cancelled or the alert is raised
    warn: Tuple[float, float, int] = WARN_PATTERN

    def __post_init__(self) -> None:
        for name in ("pending", "sent", "fault_led"):
            value = getattr(self, name)
            if len(value) != 2:
                raise ValueError(f"pattern {name} is [on_s, off_s], not {list(value)!r}")
            _check_times(name, *value)
        for name in COUNTED:
            value = getattr(self, name)
            if len(value) != 3:
                raise ValueError(f"pattern {name} is [on_s, off_s, count], not {list(value)!r}")
            _check_times(name, value[0], value[1])
            count = value[2]
            if isinstance(count, bool) or not isinstance(count, int) \
                    or not 1 <= count <= MAX_PATTERN_COUNT:
                raise ValueError(f"pattern {name}: count {count!r} must be a whole number "
                                 f"from 1 to {MAX_PATTERN_COUNT}")


class BookStore(Protocol):
    def save(self, book: AlarmBook, *, now: float, wall: float) -> None: ...


def ts_epoch(ts: str) -> float:
    """An event's ``ts`` (``YYYY-MM-DDTHH:MM:SS.mmmZ``) as seconds since the epoch."""
    when = datetime.strptime(ts[:-1], "%Y-%m-%dT%H:%M:%S.%f")
    return when.replace(tzinfo=timezone.utc).timestamp()


class Feedback:
    """Feeds the alarm book and shows it on the outputs (module docstring).

    ``clock`` / ``wall``: monotonic and epoch seconds (the agent's, injected);
    ``store``: saves the book after each change (None: not saved, e.g. in tests).
    """

    def __init__(self, *, buzzer: Any = None, led: Any = None,
                 patterns: Patterns = Patterns(), book: Optional[AlarmBook] = None,
                 store: Optional[BookStore] = None, clock: Callable[[], float] = lambda: 0.0,
                 wall: Callable[[], float] = lambda: 0.0) -> None:
        self.buzzer = buzzer
        self.led = led
        self.patterns = patterns
        self.book = book if book is not None else AlarmBook()
        self._store, self._clock, self._wall = store, clock, wall
        self._save_failed = False
        self.storage_failed = False
        #: the most recent alarm (for ``status``)
        self.alarm_jti: Optional[str] = None
        self.phase = "idle"           # idle | pending | sent | acknowledged
        self._update()                # a restored book: the LED shows its alarms again

    def recorded(self, events: Sequence[Any], row_ids: Mapping[str, int]) -> None:
        """Events just committed to the outbox or, when it cannot be written, held in
        memory (``row_ids``: jti -> row id; negative for memory)."""
        new_alarm = False
        for event in events:
            self._warning(event.type)
            if event.type == REMINDER_TYPE:
                self.book.reminder_made(str(event.data.get("alarm_jti")), event.jti)
            elif self.book.opens(event.type) and event.critical:
                self.book.opened(jti=event.jti, type=event.type, sensor=event.sensor,
                                 ts_wall=ts_epoch(event.ts), now=self._clock(), wall=self._wall(),
                                 row=row_ids.get(event.jti))
                self.alarm_jti = event.jti
                new_alarm = True
        if new_alarm:
            self._play(self.patterns.chirp)
        self._update()

    def _warning(self, event_type: str) -> None:
        """The ``warn`` pattern from ``care.inactivity_warning`` until it is cancelled
        (or ``care.inactivity``, whose alarm chirp takes the buzzer over)."""
        if self.buzzer is None:
            return
        if event_type == "care.inactivity_warning":
            on_s, off_s, _ = self.patterns.warn   # rounds repeated without a pause: one blink
            self.buzzer.blink(on_s, off_s, n=None)
        elif event_type == "care.inactivity_cancelled":
            self.buzzer.off()

    def delivered(self, row_ids: Sequence[int]) -> None:
        """The broker PUBACKed these rows (outbox, or memory: negative)."""
        self.book.delivered_rows(row_ids)
        self._update()

    def stored(self, row_ids: Mapping[str, int]) -> None:
        """Alarms held in memory are now outbox rows too (``row_ids``: jti -> row id)."""
        for jti, row in row_ids.items():
            self.book.stored(jti, row)
        self._update()

    def storage(self, failed: bool) -> None:
        """Events can (False) or cannot (True) be stored: the fault pattern."""
        if failed == self.storage_failed:
            return
        self.storage_failed = failed
        if failed:
            log.warning("local feedback: storage fault")
            self._play(self.patterns.fault)
        if self.phase in ("idle", "acknowledged"):
            self._set(self.phase)       # the LED shows the fault, or stops showing it

    def ack(self, in_reply_to: Optional[str]) -> List[Acknowledged]:
        """The care centre has seen an alarm (``in_reply_to``: the alarm's or a reminder's
        jti; None: every open one). Returns the alarms it closed."""
        closed = self.book.acknowledge(in_reply_to, wall=self._wall())
        if not closed:
            log.info("ack for %s closes no open alarm; ignored", in_reply_to or "all")
            return closed
        if self.buzzer is not None:
            self.buzzer.off()
        self._update()
        return closed

    def advance(self, now: float) -> List[Reminder]:
        """The reminders due by ``now``; the buzzer plays ``escalate`` for them."""
        due = self.book.advance(now=now, wall=self._wall())
        if due:
            log.warning("no acknowledgement for %s", ", ".join(
                f"{r.alarm_type} {r.alarm_jti} (reminder {r.repeat})" for r in due))
            self._play(self.patterns.escalate)
            self._update()
        return due

    def next_deadline(self) -> Optional[float]:
        return self.book.next_deadline()

    def locate(self) -> None:
        self._play(self.patterns.locate)

    def snapshot(self) -> Dict[str, Any]:
        # ``ts``, not an age: status.json is rewritten only when something changes
        return {"phase": self.phase, "alarm_jti": self.alarm_jti,
                "open_alarms": len(self.book.open_alarms), "storage_failed": self.storage_failed,
                "alarms": [{"jti": a.jti, "type": a.type, "sensor": a.sensor, "phase": a.phase,
                            "ts": a.ts_wall, "reminders": a.repeats}
                           for a in self.book.open_alarms]}

    def _play(self, pattern: Tuple[float, float, int]) -> None:
        if self.buzzer is not None:
            on, off, n = pattern
            self.buzzer.blink(on, off, n)

    def _update(self) -> None:
        if self.book.changes() and self._store is not None:
            self._save()
        phase = self.book.led_phase()
        if phase != self.phase:
            self._set(phase)

    def _save(self) -> None:
        assert self._store is not None
        try:
            self._store.save(self.book, now=self._clock(), wall=self._wall())
        except OSError as exc:  # a read-only card: the alarms live on in memory
            if not self._save_failed:
                log.error("cannot save the open alarms (%s); they are kept in memory and "
                          "would not survive a restart", exc)
            self._save_failed = True
        else:
            self._save_failed = False

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

"""The alarm book: every open alarm, its phase, and when its next reminder is due
(docs/spec.md §11).

Theory of operation
-------------------
An *alarm* is opened by an event of :data:`OPENING_TYPES` once that event is committed
to the outbox; its id is the event's ``jti``. It then moves through three phases::

    pending --delivered--> sent --acknowledged--> (closed)
       └-------------------acknowledged-------------┘

*delivered* is the first PUBACK from the broker or the first ACK from the alarm
receiving centre (ARC); *acknowledged* is an accepted ``ack`` command naming the alarm
or one of its reminders (or naming nothing: every open alarm), or, where configured, an
ARC ACK (:meth:`AlarmBook.delivered` with ``closes=True``). A closed alarm leaves the
book; the book remembers only the latency of the last acknowledgement.

Escalation: ``ack_timeout_s`` after an alarm was committed and then every ``repeat_s``,
at most ``max_repeats`` times, :meth:`advance` returns a :class:`Reminder` for each alarm
still open. The agent turns it into an ``alarm.unacknowledged`` event and tells the book
that event's ``jti`` (:meth:`reminder_made`), so that an ``ack`` naming the reminder
closes the alarm.

Two clocks, both arguments: ``now`` (monotonic seconds) for deadlines, which a clock
step cannot move, and ``wall`` (seconds since the epoch) for what the outside world
reads: an alarm's age, an acknowledgement's latency, and the saved state. A restart
turns wall times back into deadlines (:meth:`AlarmBook.restore`): a reminder keeps its
original time by the wall clock, but a wall clock that is behind the time saved at the
last change (a Pi without RTC at boot) is taken to be at least that time, so a stale
clock never delays a reminder.

The book does no I/O; :mod:`agent.alarms.store` saves :meth:`to_data` after each change
that :meth:`changes` reports.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

#: event types that open an alarm (tamper.opened only outside maintenance: the caller
#: passes it only then, see :meth:`AlarmBook.opens`)
OPENING_TYPES = frozenset({
    "sos.pressed", "smoke.alarm", "sensor.stuck", "tamper.opened",
    "care.night_door", "care.inactivity", "care.door_left_open", "care.not_returned",
})
REMINDER_TYPE = "alarm.unacknowledged"

PENDING, SENT = "pending", "sent"
#: phase -> input -> next phase; "acknowledged" closes the alarm (it leaves the book)
TRANSITIONS: Mapping[str, Mapping[str, str]] = {
    PENDING: {"delivered": SENT, "acknowledged": "closed"},
    SENT: {"delivered": SENT, "acknowledged": "closed"},
}

#: what the LED shows (drivers' patterns): the least advanced open alarm wins
LED_IDLE, LED_ACKNOWLEDGED = "idle", "acknowledged"


#: the allowed ranges of ``alarms:`` (the config reader checks the same, with lines)
MIN_S, MAX_S, MAX_REPEATS = 10, 86400, 1000


@dataclass(frozen=True)
class AlarmSchedule:
    """``alarms:`` of the config (docs/spec.md §11); every default lives here."""

    ack_timeout_s: float = 120
    repeat_s: float = 300
    max_repeats: int = 12

    def __post_init__(self) -> None:
        for name, low, high in (("ack_timeout_s", MIN_S, MAX_S), ("repeat_s", MIN_S, MAX_S)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"alarms.{name} must be a number of seconds from {low} to {high}, "
                                 f"not {value!r}")
        if isinstance(self.max_repeats, bool) or not isinstance(self.max_repeats, int) \
                or not 0 <= self.max_repeats <= MAX_REPEATS:
            raise ValueError(f"alarms.max_repeats must be an integer from 0 to {MAX_REPEATS}, "
                             f"not {self.max_repeats!r}")


@dataclass(frozen=True)
class OpenAlarm:
    """One open alarm as ``status`` and the saved state show it."""

    jti: str
    type: str
    sensor: str
    phase: str
    ts_wall: float          # the opening event's ``ts``, seconds since the epoch
    committed_wall: float   # when it was committed (wall clock then)
    repeats: int = 0        # reminders raised so far
    reminder_jtis: Tuple[str, ...] = ()
    #: the opening event's outbox row (negative: the memory buffer's key; None: unknown),
    #: so that a PUBACK, which names rows, can make it ``sent``
    row: Optional[int] = None

    def __post_init__(self) -> None:
        if self.phase not in TRANSITIONS:
            raise ValueError(f"alarm {self.jti}: unknown phase {self.phase!r}")
        if self.repeats < 0:
            raise ValueError(f"alarm {self.jti}: repeats must not be negative")

    def age_s(self, wall: float) -> int:
        """Whole seconds since the alarm's ``ts`` (0 while the clock reads earlier)."""
        return max(0, int(wall - self.ts_wall))


@dataclass(frozen=True)
class Reminder:
    """Raise ``alarm.unacknowledged`` for this alarm (docs/spec.md §11 "Escalation")."""

    alarm_jti: str
    alarm_type: str
    sensor: str
    phase: str
    age_s: int
    repeat: int

    def data(self) -> Dict[str, Any]:
        return {"alarm_jti": self.alarm_jti, "alarm_type": self.alarm_type, "phase": self.phase,
                "age_s": self.age_s, "repeat": self.repeat}


@dataclass(frozen=True)
class Acknowledged:
    """One alarm an acknowledgement closed, as ``command.done`` reports it."""

    jti: str
    type: str
    latency_ms: int

    def data(self) -> Dict[str, Any]:
        return {"jti": self.jti, "type": self.type, "latency_ms": self.latency_ms}


@dataclass
class _Entry:
    alarm: OpenAlarm
    due: Optional[float]    # monotonic time of the next reminder; None: no more


@dataclass
class AlarmBook:
    """The open alarms (module docstring). Not thread-safe: the agent's loop owns it."""

    schedule: AlarmSchedule = field(default_factory=AlarmSchedule)
    _entries: Dict[str, _Entry] = field(default_factory=dict)
    #: latency of the last acknowledgement, for the periodic test report (§13.3)
    last_ack_latency_ms: Optional[int] = None
    _acknowledged_last: bool = False
    _changed: bool = False

    # --- inputs ---------------------------------------------------------------------
    @staticmethod
    def opens(event_type: str) -> bool:
        return event_type in OPENING_TYPES

    def opened(self, *, jti: str, type: str, sensor: str, ts_wall: float,
               now: float, wall: float, row: Optional[int] = None) -> None:
        """An alarm-opening event was committed to the outbox (as ``row``)."""
        if jti in self._entries:
            return
        alarm = OpenAlarm(jti, type, sensor, PENDING, ts_wall, wall, row=row)
        due = now + self.schedule.ack_timeout_s if self.schedule.max_repeats > 0 else None
        self._entries[jti] = _Entry(alarm, due)
        self._acknowledged_last = False
        self._changed = True

    def delivered(self, jti: str, *, closes: bool = False, wall: float = 0.0) -> List[Acknowledged]:
        """A path acknowledged the opening event ``jti`` (PUBACK, or an ARC ACK).

        ``closes``: this path's acknowledgement also acknowledges the alarm (an ARC ACK
        with ``arc.ack_closes_alarms``). Returns the alarms that closed.
        """
        entry = self._entries.get(jti)
        if entry is None:
            return []
        if closes:
            return self._close([jti], wall)
        if entry.alarm.phase != SENT:
            entry.alarm = replace(entry.alarm, phase=TRANSITIONS[entry.alarm.phase]["delivered"])
            self._changed = True
        return []

    def stored(self, jti: str, row: int) -> None:
        """The alarm's event moved from memory into the outbox as ``row``."""
        entry = self._entries.get(jti)
        if entry is not None and entry.alarm.row != row:
            entry.alarm = replace(entry.alarm, row=row)
            self._changed = True

    def delivered_rows(self, rows: Iterable[int]) -> None:
        """The broker PUBACKed these outbox (or memory) rows: their alarms are ``sent``."""
        done = set(rows)
        for jti in [j for j, e in self._entries.items() if e.alarm.row in done]:
            self.delivered(jti)

    def acknowledge(self, in_reply_to: Optional[str], *, wall: float) -> List[Acknowledged]:
        """An accepted ``ack`` command: closes the alarm named by ``in_reply_to`` (its own
        jti or a reminder's), or every open alarm when it names none."""
        if in_reply_to is None:
            return self._close(list(self._entries), wall)
        for jti, entry in self._entries.items():
            if in_reply_to == jti or in_reply_to in entry.alarm.reminder_jtis:
                return self._close([jti], wall)
        return []

    def reminder_made(self, alarm_jti: str, reminder_jti: str) -> None:
        """The reminder for ``alarm_jti`` was committed as event ``reminder_jti``."""
        entry = self._entries.get(alarm_jti)
        if entry is not None:
            entry.alarm = replace(entry.alarm, reminder_jtis=entry.alarm.reminder_jtis + (reminder_jti,))
            self._changed = True

    def advance(self, *, now: float, wall: float) -> List[Reminder]:
        """The reminders due by ``now``, oldest alarm first; each alarm at most once a call."""
        due: List[Reminder] = []
        for entry in sorted(self._entries.values(), key=lambda e: e.alarm.committed_wall):
            if entry.due is None or entry.due > now:
                continue
            a = replace(entry.alarm, repeats=entry.alarm.repeats + 1)
            entry.alarm = a
            more = a.repeats < self.schedule.max_repeats
            # from the deadline, not from now: a late loop does not shift the schedule
            entry.due = max(entry.due + self.schedule.repeat_s, now) if more else None
            due.append(Reminder(a.jti, a.type, a.sensor, a.phase, a.age_s(wall), a.repeats))
            self._changed = True
        return due

    # --- what it shows --------------------------------------------------------------
    def next_deadline(self) -> Optional[float]:
        times = [e.due for e in self._entries.values() if e.due is not None]
        return min(times) if times else None

    @property
    def open_alarms(self) -> Tuple[OpenAlarm, ...]:
        return tuple(sorted((e.alarm for e in self._entries.values()), key=lambda a: a.committed_wall))

    def led_phase(self) -> str:
        """``pending`` while any open alarm is undelivered, ``sent`` while all open ones are
        delivered, ``acknowledged`` once the last one closed, else ``idle``."""
        phases = {e.alarm.phase for e in self._entries.values()}
        if PENDING in phases:
            return PENDING
        if phases:
            return SENT
        return LED_ACKNOWLEDGED if self._acknowledged_last else LED_IDLE

    def changes(self) -> bool:
        """True once after any change since the last call: time to save."""
        changed, self._changed = self._changed, False
        return changed

    # --- saved state ----------------------------------------------------------------
    def to_data(self, *, now: float, wall: float) -> Dict[str, Any]:
        """JSON-ready state; deadlines as wall times (see :meth:`restore`)."""
        alarms = []
        for e in self._entries.values():
            a = e.alarm
            alarms.append({"jti": a.jti, "type": a.type, "sensor": a.sensor, "phase": a.phase,
                           "ts": a.ts_wall, "committed": a.committed_wall, "repeats": a.repeats,
                           "reminders": list(a.reminder_jtis),
                           # a memory row does not outlive the process
                           "row": a.row if a.row is not None and a.row > 0 else None,
                           "due": None if e.due is None else wall + (e.due - now)})
        return {"v": 1, "saved": wall, "alarms": alarms, "last_ack_latency_ms": self.last_ack_latency_ms}

    @classmethod
    def restore(cls, data: Mapping[str, Any], schedule: AlarmSchedule, *,
                now: float, wall: float) -> "AlarmBook":
        """The book saved by :meth:`to_data`. Raises ValueError on damaged content."""
        if not isinstance(data, Mapping) or data.get("v") != 1:
            raise ValueError("not an alarm book of version 1")
        saved = _number(data.get("saved"), "saved")
        # A clock behind the saved time (no RTC, no network yet) counts as the saved time.
        effective = max(wall, saved)
        book = cls(schedule)
        latency = data.get("last_ack_latency_ms")
        if latency is not None:
            book.last_ack_latency_ms = int(_number(latency, "last_ack_latency_ms"))
        alarms = data.get("alarms")
        if not isinstance(alarms, list):
            raise ValueError("alarms must be a list")
        for item in alarms:
            alarm = _alarm(item)
            due_wall = item.get("due")
            due = None if due_wall is None else now + max(0.0, _number(due_wall, "due") - effective)
            book._entries[alarm.jti] = _Entry(alarm, due)
        return book

    # --- inside -------------------------------------------------------------------
    def _close(self, jtis: Iterable[str], wall: float) -> List[Acknowledged]:
        closed = []
        for jti in jtis:
            entry = self._entries.pop(jti)
            latency = int(round((wall - entry.alarm.ts_wall) * 1000))
            closed.append(Acknowledged(jti, entry.alarm.type, latency))
        if closed:
            self.last_ack_latency_ms = closed[-1].latency_ms
            self._acknowledged_last = not self._entries
            self._changed = True
        return closed


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, not {value!r}")
    return float(value)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, not {value!r}")
    return value


def _alarm(item: Any) -> OpenAlarm:
    if not isinstance(item, Mapping):
        raise ValueError("each alarm must be an object")
    reminders = item.get("reminders", [])
    repeats = item.get("repeats", 0)
    row = item.get("row")
    if not isinstance(reminders, list) or isinstance(repeats, bool) or not isinstance(repeats, int):
        raise ValueError("alarm reminders must be a list and repeats an integer")
    if row is not None and (isinstance(row, bool) or not isinstance(row, int) or row < 1):
        raise ValueError(f"alarm row must be a positive integer, not {row!r}")
    return OpenAlarm(
        jti=_text(item.get("jti"), "jti"), type=_text(item.get("type"), "type"),
        sensor=_text(item.get("sensor"), "sensor"), phase=_text(item.get("phase"), "phase"),
        ts_wall=_number(item.get("ts"), "ts"), committed_wall=_number(item.get("committed"), "committed"),
        repeats=repeats, reminder_jtis=tuple(_text(r, "reminder jti") for r in reminders), row=row)

"""The agent's one loop: the single owner of sensors, care rules, command checks and timers.

Theory of operation
-------------------
Everything that happens reaches the loop as a typed message on one queue
(:mod:`agent.app.messages`): a pin edge (put there by a gpiozero callback, which does
nothing else), a command payload or a delivery notice (put there by the publisher's
thread), a stop or reload request (put there by a signal handler). A turn dispatches
each message by its type through one table (``_HANDLERS``, at the end of this module). The loop sleeps on that queue until the next message or
the next deadline — a debounce window closing, a care rule falling due, a heartbeat,
the periodic pin re-read, the watchdog — so an idle agent uses next to no CPU.

Each turn: take every queued message, feed edges to their sensor's state machine,
advance every state machine to ``now`` (both through :class:`~agent.app.sensors.Sensors`,
which ``monitor`` uses too, with the periodic pin re-read), pass sensor events through the care rules,
and hand the whole batch of recognised events to the :class:`~agent.record.recorder.Recorder`,
which signs them and commits them to the outbox in one transaction before anything
else hears of them. Only then is local feedback (buzzer, LED) driven, and the alarm
book (inside the feedback) opens the alarms among them. The book's reminder times are
deadlines of the loop too: an overdue alarm becomes an ``alarm.unacknowledged`` event.

When the state directory cannot be written the recorder keeps events in memory
instead (docs/spec.md §6): they are still returned, so feedback runs as usual, and the
feedback is told of the fault (its fault pattern). Each turn gives the recorder its
chance to try storing again (:meth:`Recorder.retry_storage`, every few seconds), and
its retry time is one of the loop's deadlines.

Time: ``clock()`` is monotonic seconds (virtual in ``simulate``); ``wall()`` is epoch
seconds. Both are injected; this module never reads a clock of its own.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Type, TypeVar

from agent import __version__
from agent.app.messages import (CallMsg, CommandMsg, DeliveredMsg, Edge, EdgeMsg, Inbox,
                                Message, StopMsg)
from agent.alarms.book import REMINDER_TYPE, Reminder
from agent.app.sensors import Sensors
from agent.record.recorder import AgentEvent, Recognised, Recorder
from drivers.events import SensorEvent

log = logging.getLogger("agent.loop")

#: how soon a batch the recorder could not take at all (a bug, not the disk) is tried again
STORE_RETRY_S = 1.0

T = TypeVar("T")


class CareHook(Protocol):
    def observe(self, event: Any, now: float, wall: float, clock_synced: bool) -> Sequence[Any]: ...
    def advance(self, now: float, wall: float, clock_synced: bool) -> Sequence[Any]: ...
    def next_deadline(self) -> Optional[float]: ...


class CommandHook(Protocol):
    """Checks a command payload and carries out what is allowed (agent.remote.handler)."""

    def handle(self, payload: bytes, now: float) -> Sequence[Recognised]: ...
    def advance(self, now: float) -> Sequence[Recognised]: ...
    def next_deadline(self) -> Optional[float]: ...


class FeedbackHook(Protocol):
    """The alarm book and the outputs that show it (agent.alarms.feedback)."""

    def recorded(self, events: Sequence[Any], row_ids: Mapping[str, int]) -> None: ...
    def delivered(self, row_ids: Sequence[int]) -> None: ...
    def stored(self, row_ids: Mapping[str, int]) -> None: ...
    def storage(self, failed: bool) -> None: ...
    def advance(self, now: float) -> Sequence[Reminder]: ...
    def next_deadline(self) -> Optional[float]: ...


class TimerHook(Protocol):
    """A timed piece of its own (the maintenance period, the test report)."""

    def advance(self, now: float) -> Sequence[Recognised]: ...
    def next_deadline(self) -> Optional[float]: ...


class WatchdogHook(Protocol):
    def watchdog(self) -> bool: ...


@dataclass(frozen=True)
class Stop:
    """Leave the loop: ``reload`` asks the caller to build the agent again."""

    reload: bool = False


@dataclass
class _Asked:
    """What one turn's messages asked for (filled by the handlers of :data:`_HANDLERS`)."""

    now: float
    sensor_events: List[SensorEvent] = field(default_factory=list)
    commands: List[bytes] = field(default_factory=list)
    delivered: List[int] = field(default_factory=list)
    calls: List[Callable[[], None]] = field(default_factory=list)
    stop: Optional[Stop] = None


class AgentLoop:
    """Runs until :meth:`request_stop`; :meth:`run` returns the :class:`Stop` that ended it."""

    def __init__(self, *, sensors: Sensors, recorder: Recorder, clock: Callable[[], float],
                 wall: Callable[[], float], synced: Callable[[], bool], heartbeat_s: float,
                 status: Callable[[], Dict[str, Any]], inbox: Optional[Inbox] = None,
                 care: Optional[CareHook] = None, commands: Optional[CommandHook] = None,
                 feedback: Optional[FeedbackHook] = None,
                 watchdog: Optional[WatchdogHook] = None, watchdog_s: Optional[float] = None,
                 on_turn: Optional[Callable[[float], None]] = None,
                 started_data: Optional[Dict[str, Any]] = None,
                 timers: Sequence[TimerHook] = ()) -> None:
        """``status``: the heartbeat's data; ``on_turn(now)``: called at the end of each turn."""
        self.sensors = sensors
        self.recorder = recorder
        self.clock, self.wall, self.synced = clock, wall, synced
        self.heartbeat_s = heartbeat_s
        self.status = status
        self.care, self.commands, self.feedback = care, commands, feedback
        self.watchdog, self.watchdog_s = watchdog, watchdog_s
        self.on_turn = on_turn
        self.started_data = started_data or {}
        self.timers = list(timers)
        self.inbox = inbox if inbox is not None else Inbox()
        self.accepting_edges = True
        self._unstored: List[Recognised] = []     # a batch the recorder refused, to retry
        self._retry_at: Optional[float] = None
        self._storage_failed_shown = False
        self._started_at = 0.0
        self._next_heartbeat = 0.0
        self._next_watchdog = 0.0

    # --- called from other threads (each only enqueues; see agent.app.messages) ---------------
    def submit_edge(self, edge: Edge) -> None:
        self.inbox.submit_edge(edge)

    def submit_command(self, payload: bytes) -> None:
        self.inbox.submit_command(payload)

    def submit_delivered(self, row_ids: Sequence[int]) -> None:
        self.inbox.submit_delivered(row_ids)

    def submit_call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the loop at the end of its next turn (after that turn's events
        are recorded): lets another thread wait until the loop has caught up."""
        self.inbox.submit_call(fn)

    def request_stop(self, *, reload: bool = False) -> None:
        """Safe from a signal handler."""
        self.inbox.request_stop(reload=reload)

    @property
    def repaired_edges(self) -> int:
        return self.sensors.repaired_edges

    # --- the loop ----------------------------------------------------------------------------
    def start(self) -> None:
        """Report every sensor's state as present now, and say the agent started."""
        now = self.clock()
        self._started_at = now
        recognised: List[Recognised] = [AgentEvent("agent.started", now, {
            "version": __version__, **self.started_data})]
        recognised += self._with_care(self.sensors.start(now), now)
        self.record(recognised)
        self._next_heartbeat = now + self.heartbeat_s
        self._next_watchdog = now

    def run(self) -> Stop:
        """Serve messages and deadlines until asked to stop."""
        while True:
            now = self.clock()
            self._ping_watchdog(now)
            messages = self.inbox.get(timeout=self._sleep_for(now))
            try:
                stop = self.turn(messages)
            except Exception:  # a bug in a turn must not end the loop (the watchdog would)
                log.exception("loop turn failed; carrying on")
                continue
            if stop is not None:
                return stop

    def turn(self, messages: Sequence[Message]) -> Optional[Stop]:
        """One turn of the loop: handle ``messages``, then whatever is due at ``now``.

        Sensor events are recorded first, on their own: they are the alarms. Every other
        step runs guarded, so a failure in one (a command, a buzzer, the status file) is
        logged and never costs a sensor event. A batch the outbox could not take (disk
        full, I/O error) is kept and tried again a second later.
        """
        now = self.clock()
        asked = _Asked(now)
        for message in messages:
            _handler(message)(self, message, asked)
        sensor_events = asked.sensor_events + self.sensors.advance(now)
        if self.sensors.reread_due(now):
            sensor_events += self._safely("pin re-read", self._reread_pins, now) or []
        self.record(self._with_care(sensor_events, now), now)
        others: List[Recognised] = []
        if self.feedback is not None:
            others += self._reminders(now)
        if self.commands is not None:
            for payload in asked.commands:
                others += self._safely("command", self.commands.handle, payload, now) or []
            others += self._safely("command timers", self.commands.advance, now) or []
        for timer in self.timers:
            others += self._safely("timer", timer.advance, now) or []
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.heartbeat_s
            self._safely("heartbeat", self.recorder.supersede, "agent", "agent.heartbeat")
            others.append(AgentEvent("agent.heartbeat", now, self._safely(
                "heartbeat", self._heartbeat_data, now) or {}))
        self.record(others, now)
        self._safely("storage retry", self._retry_storage, now)
        self._safely("eviction report", self.recorder.report_evictions, now)
        if asked.delivered and self.feedback is not None:
            self._safely("feedback", self.feedback.delivered, asked.delivered)
        if self.on_turn is not None:
            self._safely("status", self.on_turn, now)
        for fn in asked.calls:
            self._safely("call", fn)
        return asked.stop

    # --- what each message asks for: the dispatch table (_HANDLERS, below the class) -----------
    def _take_edge(self, msg: EdgeMsg, asked: _Asked) -> None:
        if self.accepting_edges:
            asked.sensor_events += self.sensors.edge(msg.sensor, msg.level, min(msg.at, asked.now))

    def _take_command(self, msg: CommandMsg, asked: _Asked) -> None:
        if self.commands is not None:
            asked.commands.append(msg.payload)

    def _take_delivered(self, msg: DeliveredMsg, asked: _Asked) -> None:
        asked.delivered += msg.row_ids

    def _take_call(self, msg: CallMsg, asked: _Asked) -> None:
        asked.calls.append(msg.fn)

    def _take_stop(self, msg: StopMsg, asked: _Asked) -> None:
        asked.stop = Stop(msg.reload)

    def _safely(self, what: str, fn: Callable[..., T], *args: Any) -> Optional[T]:
        try:
            return fn(*args)
        except Exception:  # one failing step must not stop the loop or lose sensor events
            log.exception("%s failed; carrying on", what)
            return None

    # --- pieces of a turn ---------------------------------------------------------------------
    def _with_care(self, sensor_events: Sequence[SensorEvent], now: float) -> List[Recognised]:
        out: List[Recognised] = []
        care = self.care
        wall, synced = (self.wall(), self.synced()) if care is not None else (0.0, False)
        unsent = self.sensors.drain_activity()   # motion not sent: activity for the rules only
        for event in sorted([*sensor_events, *unsent], key=lambda e: e.at):
            if not any(event is u for u in unsent):
                out.append(event)
            if care is not None:
                out += self._safely("care rules", care.observe, event, event.at,
                                    wall - (now - event.at), synced) or []
        if care is not None:
            out += self._safely("care rules", care.advance, now, wall, synced) or []
        return out

    def _reminders(self, now: float) -> List[Recognised]:
        """``alarm.unacknowledged`` for each alarm the book says is overdue: a new event
        naming its alarm (nothing is signed twice); the book learns its jti once recorded."""
        assert self.feedback is not None
        due = self._safely("alarm reminders", self.feedback.advance, now) or []
        return [AgentEvent(REMINDER_TYPE, now, r.data(), critical=True, sensor=r.sensor)
                for r in due]

    def _reread_pins(self, now: float) -> List[SensorEvent]:
        """Read every pin back; a level the state machine never heard of is a lost edge."""
        events: List[SensorEvent] = []
        for fix in self.sensors.reread(now):
            log.warning("sensor %s: pin reads %s but no edge was seen; repairing", fix.sensor,
                        "active" if fix.level else "inactive")
            events += fix.events
        return events

    def _retry_storage(self, now: float) -> None:
        restored = self.recorder.retry_storage(now)
        if restored is not None and self.feedback is not None:
            self._safely("feedback", self.feedback.stored, self.recorder.moved_row_ids)
            self._safely("feedback", self.feedback.recorded, [restored],
                         self.recorder.last_row_ids)
        self._show_storage()

    def _show_storage(self) -> None:
        failed = self.recorder.storage_failed is not None
        if failed != self._storage_failed_shown and self.feedback is not None:
            self._storage_failed_shown = failed
            self._safely("feedback", self.feedback.storage, failed)

    def record(self, recognised: Sequence[Recognised], now: Optional[float] = None) -> None:
        """Sign and store (or keep in memory, when the disk refuses: the recorder's
        degraded mode); if the recorder itself fails, keep the batch for the next try."""
        batch = self._unstored + list(recognised)
        if not batch:
            return
        when = self.clock() if now is None else now
        if self._retry_at is not None and when < self._retry_at:
            self._unstored = batch          # the outbox failed a moment ago: wait for the retry
            return
        try:
            events = self.recorder.record(sorted(batch, key=lambda e: e.at))
        except Exception:
            self._unstored = batch
            self._retry_at = when + STORE_RETRY_S
            log.exception("could not store %d events; keeping them in memory and trying "
                          "again in %g s", len(batch), STORE_RETRY_S)
            return
        self._unstored = []
        self._retry_at = None
        self._show_storage()
        if self.feedback is not None:
            self._safely("feedback", self.feedback.recorded, events, self.recorder.last_row_ids)

    def _heartbeat_data(self, now: float) -> Dict[str, Any]:
        status = self.status()
        return {"uptime_s": round(now - self._started_at, 1), **status,
                "clock_synced": self.synced(), "repaired_edges": self.repaired_edges}

    def _ping_watchdog(self, now: float) -> None:
        if self.watchdog is None or self.watchdog_s is None or now < self._next_watchdog:
            return
        self.watchdog.watchdog()
        self._next_watchdog = now + self.watchdog_s

    def next_deadline(self) -> float:
        deadlines = [self._next_heartbeat]
        for hook in (self.sensors, self.care, self.commands, self.feedback, *self.timers):
            d = hook.next_deadline() if hook is not None else None
            if d is not None:
                deadlines.append(d)
        if self._retry_at is not None:
            deadlines.append(self._retry_at)
        for due in (self.recorder.next_eviction_report(), self.recorder.next_storage_retry()):
            if due is not None:
                deadlines.append(due)
        if self.watchdog_s is not None:
            deadlines.append(self._next_watchdog)
        return min(deadlines)

    def _sleep_for(self, now: float) -> float:
        return max(0.0, self.next_deadline() - now)


_Handler = Callable[[AgentLoop, Any, _Asked], None]
#: message type -> what the loop does with it in a turn
_HANDLERS: Dict[Type[Any], _Handler] = {
    EdgeMsg: AgentLoop._take_edge,
    CommandMsg: AgentLoop._take_command,
    DeliveredMsg: AgentLoop._take_delivered,
    CallMsg: AgentLoop._take_call,
    StopMsg: AgentLoop._take_stop,
}


def _handler(message: object) -> _Handler:
    try:
        return _HANDLERS[type(message)]
    except KeyError:
        raise TypeError(f"the loop takes {', '.join(t.__name__ for t in _HANDLERS)}, "
                        f"not {type(message).__name__}: put messages through the Inbox") from None

"""The part every sensor state machine shares: clock handling, flapping, reporting.

Theory of operation
-------------------
A device class (:class:`drivers.sos.SosButton`, :class:`drivers.door.DoorContact`,
:class:`drivers.smoke.SmokeDetector`) subclasses :class:`SensorCore` and supplies its
own timers (``_deadline`` / ``_fire``) and raw-edge handling (``_raw_edge``). This
class owns what is the same for all of them:

* **The clock.** ``now`` arrives as float monotonic seconds and is turned into whole
  microseconds once. ``edge()`` and ``start()`` first run every timer due at or before
  ``now``, so a window completing at the same instant as a raw edge counts as
  completed. Timers fire *at their deadline*: an event's ``at`` is when its window
  completed, however late the loop woke up. A ``now`` earlier than one already seen
  (two threads' timestamps crossing in the queue) is treated as that earlier time.
* **Duplicate levels.** An ``edge()`` with the level already seen is ignored: it is
  neither an edge for the debouncer nor for the flapping count. This is what makes the
  loop's periodic re-read safe.
* **Flapping (docs/spec.md §3).** The N-th raw edge within the window emits one
  ``sensor.flapping``. Until ``quiet_s`` after the episode's last burst edge (see
  :mod:`drivers.debounce`), *normal* level events are suppressed (the debouncing
  underneath carries on); critical ones still go out. Outside an episode a level event
  never repeats the last reported state. Inside one, a critical level event may repeat
  it, because the change between (a release) was suppressed: each accepted re-press is
  a new alarm, at most one per ``window_s`` after the last report of that state, so a
  bouncing contact cannot flood the outbox and a real press is never swallowed. After
  the episode: ``sensor.recovered`` with ``data.state``, then the level event for the
  current state only if it differs from the last reported.
* **Reporting.** A *level event* reports a state word (``data.state``); the first one
  also carries ``data.initial = true``. :attr:`SensorCore.state` is the last state
  reported (``"unknown"`` before the start-up report).
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar, Dict, List, Mapping, Optional, Tuple

from .debounce import FlappingDetector, FlappingPolicy, Micros, to_micros, to_seconds
from .events import SensorEvent, is_critical, is_name

#: guard against a timer that never moves forward (a bug, not a runtime condition)
_MAX_TIMERS_PER_CALL = 100_000


#: a device's timers, in the order they fire when due at the same instant
Timers = List[Tuple[Optional[Micros], str]]


def earliest(timers: Timers) -> Optional[Micros]:
    """The earliest pending time in a device's timer table (None: nothing pending)."""
    due = [d for d, _ in timers if d is not None]
    return min(due) if due else None


def due_at(name: str, timers: Timers, t: Micros) -> str:
    """Which timer of the table is due at ``t`` (the first one, when several are)."""
    for due, which in timers:
        if due == t:
            return which
    raise RuntimeError(f"{name}: no timer due at {t}")  # SensorCore fires only at _deadline()


class SensorCore(abc.ABC):
    """Base of the sans-IO sensor state machines (see module docstring)."""

    #: the config ``kind`` this class implements
    kind: ClassVar[str] = ""

    def __init__(self, name: str, *, flapping: Optional[FlappingPolicy]) -> None:
        if not is_name(name) or name == "agent":
            raise ValueError(f"sensor name {name!r} must use only [A-Za-z0-9._-] and not be 'agent'")
        if flapping is not None and not isinstance(flapping, FlappingPolicy):
            raise TypeError("flapping must be a FlappingPolicy or None")
        self.name = name
        self._flap = FlappingDetector(flapping) if flapping is not None else None
        self._now: Optional[Micros] = None
        self._raw: Optional[bool] = None
        self._reported: Optional[str] = None
        self._reported_at: Micros = 0      # when _reported was last reported
        self._out: List[SensorEvent] = []

    # ----------------------------------------------------------------- public API
    @property
    def state(self) -> str:
        """The last state word reported (``"unknown"`` before the start-up report)."""
        return self._reported if self._reported is not None else "unknown"

    @property
    def raw(self) -> bool:
        """The last raw logical level seen (True = active)."""
        if self._raw is None:
            raise RuntimeError(f"{self.name}: raw level read before start()")
        return self._raw

    @property
    def started(self) -> bool:
        return self._now is not None

    @property
    def flapping(self) -> bool:
        """True during a flapping episode."""
        return self._flap is not None and self._flap.flapping

    def start(self, level: bool, now: float) -> List[SensorEvent]:
        """The logical level present at start-up (not an edge)."""
        if self._now is not None:
            raise RuntimeError(f"{self.name}: start() called twice")
        t = to_micros(now)
        self._now = t
        self._raw = bool(level)
        self._begin(bool(level), t)
        self._run_until(t)
        return self._drain()

    def edge(self, level: bool, now: float) -> List[SensorEvent]:
        """A raw edge to logical ``level`` at ``now``; repeats of the same level are ignored."""
        t = self._clock(now)
        self._run_until(t)
        level = bool(level)
        if level != self._raw:
            self._raw = level
            if self._flap is not None and self._flap.edge(t):
                self._start_flapping(t)
            self._raw_edge(level, t)
            self._run_until(t)
        return self._drain()

    def advance(self, now: float) -> List[SensorEvent]:
        """Run every timer due at or before ``now``."""
        self._run_until(self._clock(now))
        return self._drain()

    def next_deadline(self) -> Optional[float]:
        """Monotonic seconds of the next timer, or None when nothing is pending."""
        due = self._next_due()
        return None if due is None else to_seconds(due)

    def __repr__(self) -> str:
        raw = "?" if self._raw is None else str(self._raw)
        flap = " flapping" if self.flapping else ""
        return f"<{type(self).__name__} {self.name!r} state={self.state} raw={raw}{flap}>"

    # ----------------------------------------------------- for the device classes
    @abc.abstractmethod
    def _begin(self, level: bool, t: Micros) -> None:
        """Set up from the start-up level."""

    @abc.abstractmethod
    def _raw_edge(self, level: bool, t: Micros) -> None:
        """A real change of the raw level (duplicates never get here)."""

    @abc.abstractmethod
    def _deadline(self) -> Optional[Micros]:
        """The device's earliest pending timer."""

    @abc.abstractmethod
    def _fire(self, t: Micros) -> None:
        """Fire the one device timer due at ``t`` (== ``_deadline()``)."""

    @abc.abstractmethod
    def _current_state(self) -> Optional[str]:
        """The state word the debounced input stands for now (None if not settled)."""

    @abc.abstractmethod
    def _catch_up(self, t: Micros) -> None:
        """After flapping: report the current state, which differs from the last reported."""

    def _passes_flapping(self, event_type: str) -> bool:
        """May this level event go out during a flapping episode? Default: critical ones."""
        return is_critical(event_type)

    def _report(self, t: Micros, event_type: str, state: str,
                data: Optional[Mapping[str, Any]] = None) -> None:
        """A level event: reports ``state`` unless flapping suppresses it."""
        if self.flapping:
            if not self._passes_flapping(event_type):
                return
            if state == self._reported and not self._may_repeat(t):
                return
        elif state == self._reported:
            return  # nothing new to report
        body: Dict[str, Any] = {"state": state}
        if self._reported is None:
            body["initial"] = True
        if data:
            body.update(data)
        self._reported = state
        self._reported_at = t
        self._emit(t, event_type, body)

    def _may_repeat(self, t: Micros) -> bool:
        """During flapping: may a critical event repeat the reported state at ``t``?

        The change back was suppressed, so this is a new occurrence (a re-press); one per
        ``window_s`` since the state was last reported keeps a bouncing contact from
        flooding the outbox (docs/spec.md §3).
        """
        assert self._flap is not None
        return t - self._reported_at >= self._flap.window_us

    def _notice(self, t: Micros, event_type: str, data: Mapping[str, Any]) -> None:
        """A normal event that reports no state (suppressed while flapping)."""
        if self.flapping and not self._passes_flapping(event_type):
            return
        self._emit(t, event_type, data)

    def _emit(self, t: Micros, event_type: str, data: Mapping[str, Any]) -> None:
        """Emit unconditionally (faults: flapping, stuck, recovered)."""
        self._out.append(SensorEvent(type=event_type, sensor=self.name, at=to_seconds(t),
                                     data=data, critical=is_critical(event_type)))

    # ------------------------------------------------------------------ internals
    def _clock(self, now: float) -> Micros:
        if self._now is None:
            raise RuntimeError(f"{self.name}: start() must come before edge() or advance()")
        t = max(to_micros(now), self._now)
        self._now = t
        return t

    def _next_due(self) -> Optional[Micros]:
        own = self._deadline()
        flap = self._flap.deadline() if self._flap is not None else None
        if own is None:
            return flap
        return own if flap is None else min(own, flap)

    def _run_until(self, t: Micros) -> None:
        for _ in range(_MAX_TIMERS_PER_CALL):
            own = self._deadline()
            flap = self._flap.deadline() if self._flap is not None else None
            # The device's own timers go first at a tie, so recovery sees the
            # state as of that instant.
            if own is not None and own <= t and (flap is None or own <= flap):
                self._fire(own)
            elif flap is not None and flap <= t:
                self._recover(flap)
            else:
                return
        raise RuntimeError(f"{self.name}: timers did not settle (bug)")

    def _start_flapping(self, t: Micros) -> None:
        assert self._flap is not None
        policy = self._flap.policy
        self._emit(t, "sensor.flapping", {"state": self.state, "edges": policy.max_edges,
                                          "window_s": policy.window_s, "quiet_s": policy.quiet_s})

    def _recover(self, t: Micros) -> None:
        assert self._flap is not None
        self._flap.recover(t)
        current = self._current_state()
        self._emit(t, "sensor.recovered", {"state": current or "unknown", "fault": "flapping"})
        if current is not None and current != self._reported:
            self._catch_up(t)

    def _drain(self) -> List[SensorEvent]:
        out, self._out = self._out, []
        return out

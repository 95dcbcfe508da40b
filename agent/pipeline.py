"""From a recognised event to a committed outbox row: sign once, store, wake the publisher.

Theory of operation
-------------------
Sensor state machines, care rules and the agent itself produce *recognised events*
(anything with ``type``, ``sensor``, ``at``, ``data`` and ``critical``; ``at`` is
monotonic seconds). :class:`Recorder` turns a batch of them into signed
:class:`agent.events.Event` tokens, stores the whole batch in the outbox in one
transaction (``put`` returns only once it is on disk), then wakes the publisher and
logs one line per event. Nobody is told an event exists before it is durable.

Evictions the outbox had to make are reported as one ``buffer.evicted`` event at most
once a minute (:meth:`Recorder.report_evictions`), so a full buffer cannot fill itself
with its own reports. The same call reports what the outbox set aside (one
``buffer.row_quarantined`` per damaged row, ``buffer.meta_reset`` per damaged meta
value, docs/spec.md §6) and free disk below the floor (``buffer.disk_low``, at most once
an hour).

This module does no I/O of its own beyond calling the outbox it is given.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Protocol, Sequence

from agent.events import AGENT_SENSOR, Event, SeqSource, make_event
from agent.outbox import Outbox, OutboxRow
from agent.outbox_policy import EvictionReport

log = logging.getLogger("agent.events")

#: at most one ``buffer.evicted`` report per this many seconds
EVICTION_REPORT_INTERVAL_S = 60.0
#: at most one ``buffer.disk_low`` per this many seconds (docs/spec.md §6)
DISK_LOW_REPORT_INTERVAL_S = 3600.0
#: most ``buffer.row_quarantined``/``buffer.meta_reset`` events per loop turn (the rest
#: follow on the next turns, so a badly damaged file cannot stall the loop)
DAMAGE_REPORTS_PER_TURN = 20


class Recognised(Protocol):
    """What sensors, care rules and the agent hand to the recorder."""

    @property
    def type(self) -> str: ...
    @property
    def sensor(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def data(self) -> Mapping[str, Any]: ...
    @property
    def critical(self) -> bool: ...


@dataclass(frozen=True)
class AgentEvent:
    """An event of the agent's own (``agent.started``, ``command.done``, ``buffer.evicted``...)."""

    type: str
    at: float
    data: Mapping[str, Any] = field(default_factory=dict)
    critical: bool = False
    sensor: str = AGENT_SENSOR


class TokenSigner(Protocol):
    def sign(self, event: Event) -> str: ...


@dataclass(frozen=True)
class Clocks:
    """How the recorder tells time: ``wall_of(at)`` maps a monotonic instant to epoch
    seconds (for ``ts``); ``now_epoch()`` is the wall clock now (for ``iat``);
    ``synced()`` says whether the wall clock can be trusted (``ts_sync``)."""

    wall_of: Callable[[float], float]
    now_epoch: Callable[[], float]
    synced: Callable[[], bool]


class Recorder:
    """Signs recognised events and commits them to the outbox, in order, in one batch."""

    def __init__(self, *, device_id: str, topic_prefix: str, signer: TokenSigner,
                 counters: SeqSource, outbox: Outbox, clocks: Clocks,
                 wake: Callable[[bool], None] = lambda critical: None,
                 max_payload_bytes: Optional[int] = None) -> None:
        self.device_id = device_id
        self.topic_prefix = topic_prefix
        self._signer = signer
        self._counters = counters
        self._outbox = outbox
        self._clocks = clocks
        self._wake = wake
        self._max_payload = max_payload_bytes
        self._last_eviction_report: Optional[float] = None
        # evictions may be pending from before a restart: look once at start
        self._evictions_maybe_pending = True
        self._damage_seen = 0      # outbox.damage_found when last all reported
        self._last_disk_low: Optional[float] = None
        #: the last event recorded per sensor (for ``status``)
        self.last_by_sensor: dict[str, Event] = {}
        #: events recorded since start
        self.recorded_total = 0
        #: jti -> outbox row id, for the last batch only (local feedback follows PUBACKs)
        self.last_row_ids: dict[str, int] = {}

    def topic(self, sensor: str) -> str:
        return f"{self.topic_prefix}/events/{sensor}"

    def record(self, recognised: Sequence[Recognised], *,
               settles: Optional[EvictionReport] = None) -> List[Event]:
        """Sign and store ``recognised``; returns the events once they are on disk."""
        if not recognised:
            return []
        synced = self._clocks.synced()
        now_epoch = self._clocks.now_epoch()
        events: List[Event] = []
        rows: List[OutboxRow] = []
        for item in recognised:
            event = make_event(device_id=self.device_id, type=item.type, sensor=item.sensor,
                               critical=item.critical, data=dict(item.data),
                               recognised_at=self._clocks.wall_of(item.at),
                               counters=self._counters, clock_synced=synced,
                               now_epoch=now_epoch)
            token = self._signer.sign(event).encode("ascii")
            if self._max_payload is not None and len(token) > self._max_payload:
                # never silently dropped: stored anyway, and said loudly
                log.error("event %s seq %d is %d bytes, over mqtt.max_payload_bytes %d; "
                          "the broker may refuse it", event.type, event.seq, len(token),
                          self._max_payload)
            events.append(event)
            rows.append(OutboxRow(seq=event.seq, critical=event.critical,
                                  topic=self.topic(event.sensor), payload=token, jti=event.jti,
                                  sensor=event.sensor, type=event.type, created=now_epoch))
        stored = self._outbox.put(rows, settles=settles)
        if stored.evicted is not None:
            self._evictions_maybe_pending = True
        self.last_row_ids = {r.jti: r.row_id for r in stored.rows if r.row_id is not None}
        self.recorded_total += len(events)
        for event in events:
            self.last_by_sensor[event.sensor] = event
            # logged only once committed: a line here is a promise the event is durable
            log.info("event %s sensor=%s seq=%d prio=%s ts=%s jti=%s data=%s", event.type,
                     event.sensor, event.seq, event.prio, event.ts, event.jti,
                     _short(event.claims()["data"]))
        # critical: it ends the publisher's back-off wait (docs/spec.md §6)
        self._wake(any(e.critical for e in events))
        return events

    def report_evictions(self, now: float) -> Optional[Event]:
        """Record one ``buffer.evicted`` event if evictions are pending and the last
        report is at least a minute old. Returns the event, if one was made.

        Also reports damaged content and low disk (module docs): the loop calls this every
        turn, and a turn comes at least every couple of seconds (the pin re-read)."""
        self._report_disk_low(now)
        self._report_damage(now)
        return self._report_evicted(now)

    def _report_disk_low(self, now: float) -> None:
        free = self._outbox.disk_low
        if free is None or (self._last_disk_low is not None
                            and now - self._last_disk_low < DISK_LOW_REPORT_INTERVAL_S):
            return
        self._last_disk_low = now
        floor = self._outbox.limits.min_free_mb
        log.warning("only %.1f MB free for the outbox, under buffer.min_free_mb %g: normal "
                    "events are being dropped; free some space", free / 2**20, floor)
        self.record([AgentEvent("buffer.disk_low", now, {
            "free_mb": round(free / 2**20, 1), "min_free_mb": floor}, critical=True)])

    def _report_damage(self, now: float) -> None:
        found = self._outbox.damage_found
        if found == self._damage_seen:
            return
        damage = self._outbox.unreported_damage(DAMAGE_REPORTS_PER_TURN)
        if damage:
            self.record([AgentEvent("buffer.row_quarantined" if d.row_id is not None
                                    else "buffer.meta_reset", now, d.as_data(),
                                    critical=d.row_id is not None) for d in damage])
            self._outbox.settle_damage(damage)
        if len(damage) < DAMAGE_REPORTS_PER_TURN:
            self._damage_seen = found

    def _report_evicted(self, now: float) -> Optional[Event]:
        if not self._evictions_maybe_pending or (
                self._last_eviction_report is not None
                and now - self._last_eviction_report < EVICTION_REPORT_INTERVAL_S):
            return None
        pending = self._outbox.pending_evictions()
        self._evictions_maybe_pending = False
        if pending is None:
            return None
        self._last_eviction_report = now
        log.warning("outbox full: evicted %d normal and %d critical events (seq %d-%d)",
                    pending.normal_count, pending.critical_count, pending.first_seq,
                    pending.last_seq)
        made = self.record([AgentEvent("buffer.evicted", now, pending.as_data(),
                                       critical=False)], settles=pending)
        return made[0]

    def next_eviction_report(self) -> Optional[float]:
        """When :meth:`report_evictions` should next run (None: nothing to report)."""
        if not self._evictions_maybe_pending or self._last_eviction_report is None:
            return None
        return self._last_eviction_report + EVICTION_REPORT_INTERVAL_S

    def supersede(self, sensor: str, type: str) -> None:
        """Drop undelivered ``type`` events of ``sensor``: a newer one replaces them."""
        self._outbox.supersede(sensor, type)


class OutboxSource:
    """The outbox as the publisher's row source: acks are queued, never waited for.

    The outbox's owner thread handles requests in order, so an ack queued before a
    ``next_batch`` is applied before it: a delivered row is never offered again.
    """

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def next_batch(self, limit: int, exclude: Any) -> Sequence["_SourceRow"]:
        return [_SourceRow(r.row_id or 0, r.topic, r.payload)
                for r in self._outbox.next_batch(limit, exclude)]

    def ack(self, row_ids: Sequence[int]) -> None:
        self._outbox.submit_ack(row_ids)


@dataclass(frozen=True)
class _SourceRow:
    row_id: int
    topic: str
    payload: bytes


def _short(data: Mapping[str, Any], limit: int = 200) -> str:
    import json

    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."

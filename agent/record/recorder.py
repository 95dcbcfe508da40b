"""From a recognised event to a committed outbox row: sign once, store, wake the publisher.

Theory of operation
-------------------
Sensor state machines, care rules and the agent itself produce *recognised events*
(anything with ``type``, ``sensor``, ``at``, ``data`` and ``critical``; ``at`` is
monotonic seconds). :class:`Recorder` turns a batch of them into signed
:class:`agent.record.events.Event` tokens, stores the whole batch in the outbox in one
transaction (``put`` returns only once it is on disk), then logs one line per event,
tells the ``on_recorded`` observer (the demo prints them) and wakes the publisher.
Nobody is told an event exists before it is durable.

Evictions the outbox had to make are reported as one ``buffer.evicted`` event at most
once a minute (:meth:`Recorder.report_evictions`), so a full buffer cannot fill itself
with its own reports. The same call reports what the outbox set aside (one
``buffer.row_quarantined`` per damaged row, ``buffer.meta_reset`` per damaged meta
value, docs/spec.md §6) and free disk below the floor (``buffer.disk_low``, at most once
an hour).

Storage failure is a degraded mode, not an exit (docs/spec.md §6). When a ``put``
fails (read-only card, I/O error, full disk), or there is no outbox at all because it
could not be opened at start, the recorder:

* makes a critical ``buffer.storage_failed`` event (``data.reason``) first, then the
  batch again with ``data.stored = false``. Those first tokens never left the device;
  the new ones keep their ``jti`` (should the failed commit have reached the disk
  after all, the cloud drops the copy) and take new ``seq`` numbers. That is the one
  time an event is signed again: from then on, events are made with ``stored = false``
  straight away and kept, signed, in the :class:`~agent.outbox.memory.MemoryBuffer`;
  a retry never signs;
* every ``STORAGE_RETRY_S`` seconds (:meth:`Recorder.retry_storage`, driven by the
  loop) tries to move what memory holds into the outbox (or to write a probe when it
  holds nothing, or to open the outbox); once that works, storing resumes and a
  ``buffer.storage_restored`` event (normal, ``data.moved``) says so. A token moved
  to the outbox still says ``stored: false``: it was signed while it could not be.

``Recorder.source`` (:class:`~agent.outbox.source.EventSource`) is what the publisher
reads: the outbox's rows and the memory buffer's, merged.

This module does no I/O of its own beyond calling the outbox it is given.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Sequence, Tuple

from agent.outbox.memory import MemoryBuffer
from agent.outbox.policy import EvictionReport
from agent.wire import events_topic
from agent.outbox.source import EventSource
from agent.outbox.store import Outbox, OutboxRow
from agent.record.events import Event, SeqSource, make_event
from agent.record.recognised import AgentEvent, Recognised

#: AgentEvent and Recognised are also importable from here (their home: recognised.py)
__all__ = ["Recorder", "Clocks", "TokenSigner", "AgentEvent", "Recognised"]

log = logging.getLogger("agent.events")

#: at most one ``buffer.evicted`` report per this many seconds
EVICTION_REPORT_INTERVAL_S = 60.0
#: at most one ``buffer.disk_low`` per this many seconds (docs/spec.md §6)
DISK_LOW_REPORT_INTERVAL_S = 3600.0
#: most ``buffer.row_quarantined``/``buffer.meta_reset`` events per loop turn (the rest
#: follow on the next turns, so a badly damaged file cannot stall the loop)
DAMAGE_REPORTS_PER_TURN = 20
#: how often storing is tried again while the state directory cannot be written
STORAGE_RETRY_S = 5.0


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
                 counters: SeqSource, outbox: Optional[Outbox], clocks: Clocks,
                 wake: Callable[[bool], None] = lambda critical: None,
                 max_payload_bytes: Optional[int] = None,
                 memory: Optional[MemoryBuffer] = None,
                 open_outbox: Optional[Callable[[], Outbox]] = None,
                 storage_failed: Optional[str] = None,
                 on_recorded: Optional[Callable[[Sequence[Event]], None]] = None) -> None:
        """``outbox`` None (with ``storage_failed`` saying why, and ``open_outbox`` to try
        again) starts in the degraded mode of the module notes. ``on_recorded(events)``
        is called on the loop's thread with each batch once it is committed (or held in
        memory): the way to learn what was recorded, instead of reading the log."""
        #: observer of each recorded batch (see above); may be set once built
        self.on_recorded = on_recorded
        self.device_id = device_id
        self.topic_prefix = topic_prefix
        self._signer = signer
        self._counters = counters
        #: the publisher's row source: outbox and memory (module notes)
        self.source = EventSource(outbox, memory or MemoryBuffer())
        self._open_outbox = open_outbox
        #: why events cannot be stored now (None while they can)
        self.storage_failed: Optional[str] = None
        self._announce: Optional[str] = storage_failed or (
            "no outbox" if outbox is None else None)
        self._retry_at: Optional[float] = None
        #: jti -> outbox row id of alarms moved from memory by the last successful retry
        self.moved_row_ids: Dict[str, int] = {}
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
        return events_topic(self.topic_prefix, sensor)

    def record(self, recognised: Sequence[Recognised], *,
               settles: Optional[EvictionReport] = None) -> List[Event]:
        """Sign and store ``recognised``; returns the events once they are on disk, or,
        when the disk refuses them, once they are in memory (module notes)."""
        if not recognised:
            return []
        when = max(item.at for item in recognised)
        if self._announce is not None:
            reason, self._announce = self._announce, None
            self._fail(reason, when)
        outbox = self.source.outbox
        if self.storage_failed is not None or outbox is None:
            events = self._keep_in_memory(recognised)
        else:
            signed = [self._sign(item, stored=True) for item in recognised]
            events = [event for event, _ in signed]
            try:
                stored = outbox.put([row for _, row in signed], settles=settles)
            except Exception as exc:  # read-only, I/O error, disk full: degraded, not an exit
                self._fail(str(exc), when)
                events = self._keep_in_memory(recognised, jtis=[e.jti for e in events])
            else:
                if stored.evicted is not None:
                    self._evictions_maybe_pending = True
                self.last_row_ids = {r.jti: r.row_id for r in stored.rows
                                     if r.row_id is not None}
        self.recorded_total += len(events)
        for event in events:
            self.last_by_sensor[event.sensor] = event
            # logged once committed (or kept in memory, data.stored=false says which)
            log.info("event %s sensor=%s seq=%d prio=%s ts=%s jti=%s data=%s", event.type,
                     event.sensor, event.seq, event.prio, event.ts, event.jti,
                     _short(event.claims()["data"]))
        if self.on_recorded is not None:
            self.on_recorded(events)
        # critical: it ends the publisher's back-off wait (docs/spec.md §6)
        self._wake(any(e.critical for e in events))
        return events

    def _sign(self, item: Recognised, *, stored: bool,
              jti: Optional[str] = None) -> Tuple[Event, OutboxRow]:
        data = dict(item.data)
        if not stored:
            data["stored"] = False
        extra: Dict[str, Any] = {} if jti is None else {"new_jti": lambda: jti}
        event = make_event(device_id=self.device_id, type=item.type, sensor=item.sensor,
                           critical=item.critical, data=data,
                           recognised_at=self._clocks.wall_of(item.at),
                           counters=self._counters, clock_synced=self._clocks.synced(),
                           now_epoch=self._clocks.now_epoch(), **extra)
        token = self._signer.sign(event).encode("ascii")
        if self._max_payload is not None and len(token) > self._max_payload:
            # never silently dropped: stored anyway, and said loudly
            log.error("event %s seq %d is %d bytes, over mqtt.max_payload_bytes %d; "
                      "the broker may refuse it", event.type, event.seq, len(token),
                      self._max_payload)
        return event, OutboxRow(seq=event.seq, critical=event.critical,
                                topic=self.topic(event.sensor), payload=token, jti=event.jti,
                                sensor=event.sensor, type=event.type,
                                created=self._clocks.now_epoch())

    def _keep_in_memory(self, recognised: Sequence[Recognised], *,
                        jtis: Optional[Sequence[Optional[str]]] = None) -> List[Event]:
        """Sign with ``stored = false`` (once) and hold in memory for the publisher."""
        events: List[Event] = []
        self.last_row_ids = {}
        for i, item in enumerate(recognised):
            event, row = self._sign(item, stored=False, jti=None if jtis is None else jtis[i])
            key, evicted = self.source.hold(row)
            events.append(event)
            self.last_row_ids[event.jti] = key
            for gone in evicted:
                log.error("memory buffer full: dropped %s seq %d (%s)", gone.type, gone.seq,
                          "critical" if gone.critical else "normal")
        return events

    def _fail(self, reason: str, when: float) -> None:
        first = self.storage_failed is None
        self.storage_failed = reason
        self._retry_at = when + STORAGE_RETRY_S
        if first:
            log.error("cannot store events (%s): sending them from memory (data.stored=false) "
                      "and trying again every %g s; check the SD card and free space",
                      reason, STORAGE_RETRY_S)
            self._keep_in_memory([AgentEvent("buffer.storage_failed", when,
                                              {"reason": reason[:200]}, critical=True)])

    def retry_storage(self, now: float) -> Optional[Event]:
        """If storing failed and a retry is due, try again; returns the
        ``buffer.storage_restored`` event once storing works again."""
        if self.storage_failed is None or self._retry_at is None or now < self._retry_at:
            return None
        self._retry_at = now + STORAGE_RETRY_S
        try:
            outbox = self.source.outbox
            if outbox is None:
                if self._open_outbox is None:
                    return None
                outbox = self._open_outbox()
                self.source.outbox = outbox
            moved = self.source.move_to_outbox()
        except Exception as exc:  # still failing: stay degraded, quietly (said at entry)
            log.debug("storing still fails: %s", exc)
            return None
        self.moved_row_ids = moved
        self.storage_failed = None
        self._retry_at = None
        self.source.retry_acks()
        log.warning("storing events works again; %d events moved from memory to the outbox",
                    len(moved))
        made = self.record([AgentEvent("buffer.storage_restored", now, {"moved": len(moved)})])
        return made[0] if made else None

    def next_storage_retry(self) -> Optional[float]:
        """When :meth:`retry_storage` should next run (None: storing works)."""
        return self._retry_at if self.storage_failed is not None else None

    def flush_to_disk(self) -> int:
        """At exit: one last try to store what memory holds; returns how many are left."""
        if self.storage_failed is not None and self._retry_at is not None:
            self.retry_storage(self._retry_at)
        return self.source.memory_depth()

    def report_evictions(self, now: float) -> Optional[Event]:
        """Record one ``buffer.evicted`` event if evictions are pending and the last
        report is at least a minute old. Returns the event, if one was made.

        Also reports damaged content and low disk (module docs): the loop calls this every
        turn, and a turn comes at least every couple of seconds (the pin re-read). While
        storing fails, nothing here is reported: the report could not settle its count
        (``buffer.storage_failed`` went out instead)."""
        outbox = self.source.outbox
        if outbox is None or self.storage_failed is not None:
            return None
        self._report_disk_low(outbox, now)
        self._report_damage(outbox, now)
        return self._report_evicted(outbox, now)

    def _report_disk_low(self, outbox: Outbox, now: float) -> None:
        free = outbox.disk_low
        if free is None or (self._last_disk_low is not None
                            and now - self._last_disk_low < DISK_LOW_REPORT_INTERVAL_S):
            return
        self._last_disk_low = now
        floor = outbox.limits.min_free_mb
        log.warning("only %.1f MB free for the outbox, under buffer.min_free_mb %g: normal "
                    "events are being dropped; free some space", free / 2**20, floor)
        self.record([AgentEvent("buffer.disk_low", now, {
            "free_mb": round(free / 2**20, 1), "min_free_mb": floor}, critical=True)])

    def _report_damage(self, outbox: Outbox, now: float) -> None:
        found = outbox.damage_found
        if found == self._damage_seen:
            return
        damage = outbox.unreported_damage(DAMAGE_REPORTS_PER_TURN)
        if damage:
            self.record([AgentEvent("buffer.row_quarantined" if d.row_id is not None
                                    else "buffer.meta_reset", now, d.as_data(),
                                    critical=d.row_id is not None) for d in damage])
            outbox.settle_damage(damage)
        if len(damage) < DAMAGE_REPORTS_PER_TURN:
            self._damage_seen = found

    def _report_evicted(self, outbox: Outbox, now: float) -> Optional[Event]:
        if not self._evictions_maybe_pending or (
                self._last_eviction_report is not None
                and now - self._last_eviction_report < EVICTION_REPORT_INTERVAL_S):
            return None
        pending = outbox.pending_evictions()
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
        """When :meth:`report_evictions` should next run (None: nothing to report, or
        storing fails: the report waits for storage, not for a deadline)."""
        if not self._evictions_maybe_pending or self._last_eviction_report is None \
                or self.storage_failed is not None:
            return None
        return self._last_eviction_report + EVICTION_REPORT_INTERVAL_S

    def supersede(self, sensor: str, type: str) -> None:
        """Drop undelivered ``type`` events of ``sensor``: a newer one replaces them."""
        self.source.supersede(sensor, type, on_disk=self.storage_failed is None)


def _short(data: Mapping[str, Any], limit: int = 200) -> str:
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= limit else text[:limit] + "..."

"""The publisher's rows: the outbox's and, while the disk refuses, the memory buffer's.

:class:`EventSource` is what the publisher reads (its ``RowSource``): outbox rows and
memory rows (:class:`~agent.outbox.memory.MemoryBuffer`) merged, critical first (memory
before disk within a lane: memory is what a power cut loses), then ``seq``. Memory rows
have negative ids. An outbox row whose delete (after PUBACK) could not be written is not
offered again, and its delete is tried again when storing resumes (:meth:`EventSource.retry_acks`);
a memory row moved to the outbox while in flight is acked under either id. The recorder
(``agent/record/recorder.py``) holds rows here and moves them to the outbox.

:class:`OutboxSource` is the outbox alone as a row source (tools and tests that have no
memory buffer): acks are queued, never waited for.
"""
from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import AbstractSet, Any, Dict, List, Optional, Sequence, Set, Tuple

from agent.outbox.memory import MemoryBuffer, memory_key
from agent.outbox.store import Outbox, OutboxRow

log = logging.getLogger(__name__)

#: the outbox meta key a retry writes when memory holds nothing to move (a real write)
PROBE_KEY = "agent.storage_probe"


class OutboxSource:
    """The outbox as the publisher's row source: acks are queued, never waited for.

    The outbox's owner thread handles requests in order, so an ack queued before a
    ``next_batch`` is applied before it: a delivered row is never offered again.
    """

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def next_batch(self, limit: int, exclude: Any) -> Sequence["SourceRow"]:
        return [SourceRow(r.row_id or 0, r.topic, r.payload)
                for r in self._outbox.next_batch(limit, exclude)]

    def ack(self, row_ids: Sequence[int]) -> None:
        self._outbox.submit_ack(row_ids)


RowId = int


class EventSource:
    """The publisher's rows: the outbox's and the memory buffer's (module notes).

    Thread-safe: the loop holds and moves rows, the publisher's thread reads and acks.
    The lock is never held while the outbox is called (its owner thread runs our ack
    callbacks, which take the lock).
    """

    def __init__(self, outbox: Optional[Outbox], memory: MemoryBuffer) -> None:
        self.outbox = outbox
        self._memory = memory
        self._lock = threading.Lock()
        self._acking: Set[RowId] = set()        # outbox rows acked, delete not yet committed
        self._moved: Dict[RowId, RowId] = {}    # memory key -> outbox row id it moved to
        self._read_failed = False

    # -- the loop's side ----------------------------------------------------------------
    def hold(self, row: OutboxRow) -> Tuple[RowId, List[OutboxRow]]:
        """Keep a signed row in memory; returns its (negative) key and what gave way."""
        with self._lock:
            return self._memory.add(row)

    def memory_depth(self) -> int:
        with self._lock:
            return len(self._memory)

    def memory_evicted(self) -> Tuple[int, int]:
        with self._lock:
            return self._memory.evicted_normal, self._memory.evicted_critical

    def move_to_outbox(self) -> Dict[str, RowId]:
        """Store what memory holds (or write a probe); raises while the disk refuses.
        Returns jti -> new outbox row id."""
        outbox = self.outbox
        assert outbox is not None
        with self._lock:
            rows = self._memory.rows()
        if not rows:
            outbox.set_meta(PROBE_KEY, "ok")
            return {}
        stored = outbox.put([replace(r, row_id=None) for r in rows])
        delivered_meanwhile: List[RowId] = []
        with self._lock:
            for old, new in zip(rows, stored.rows):
                assert new.row_id is not None
                key = memory_key(old)
                if self._memory.ack([key]) == 0:
                    delivered_meanwhile.append(new.row_id)   # PUBACKed while we stored it
                else:
                    self._moved[key] = new.row_id
        if delivered_meanwhile:
            self.ack(delivered_meanwhile)
        return {old.jti: new.row_id for old, new in zip(rows, stored.rows)
                if new.row_id is not None}

    def retry_acks(self) -> None:
        with self._lock:
            again = sorted(self._acking)
            self._acking.clear()
        if again:
            self.ack(again)

    def supersede(self, sensor: str, type: str, *, on_disk: bool) -> None:
        with self._lock:
            self._memory.supersede(sensor, type)
        if on_disk and self.outbox is not None:
            self.outbox.supersede(sensor, type)

    # -- the publisher's side (RowSource) -----------------------------------------------
    def next_batch(self, limit: int, exclude: AbstractSet[int]) -> Sequence["SourceRow"]:
        with self._lock:
            skip = set(self._acking)
            skip.update(self._moved[k] for k in exclude if k in self._moved)
        disk: List[Tuple[bool, int, "SourceRow"]] = []
        outbox = self.outbox
        if outbox is not None:
            try:
                disk = [(r.critical, r.seq, SourceRow(r.row_id or 0, r.topic, r.payload))
                        for r in outbox.next_batch(limit, set(exclude) | skip)]
                if self._read_failed:
                    self._read_failed = False
                    log.warning("the outbox can be read again")
            except Exception as exc:  # an unreadable card must not stop memory rows
                if not self._read_failed:
                    self._read_failed = True
                    log.error("cannot read the outbox (%s); sending what memory holds", exc)
        with self._lock:
            held = [(r.critical, r.seq, SourceRow(memory_key(r), r.topic, r.payload))
                    for r in self._memory.next_batch(limit, exclude)]
        # critical first; memory before disk within a lane; then seq
        merged = sorted([(not c, 0, q, row) for c, q, row in held]
                        + [(not c, 1, q, row) for c, q, row in disk],
                        key=lambda t: (t[0], t[1], t[2]))
        return [row for *_, row in merged[:limit]]

    def ack(self, row_ids: Sequence[int]) -> None:
        on_disk: List[RowId] = []
        with self._lock:
            for key in row_ids:
                if key < 0:
                    self._memory.ack([key])
                    moved = self._moved.pop(key, None)
                    if moved is not None:
                        on_disk.append(moved)
                else:
                    on_disk.append(key)
            self._acking.update(on_disk)
        outbox = self.outbox
        if not on_disk or outbox is None:
            return
        try:
            future = outbox.submit_ack(on_disk)
        except Exception:  # closed while stopping: the rows are sent again next start
            return
        ids = tuple(on_disk)
        future.add_done_callback(lambda f: self._acked(ids, f))

    def _acked(self, ids: Tuple[RowId, ...], future: "Future[int]") -> None:
        if future.exception() is None:
            with self._lock:
                self._acking.difference_update(ids)
        # else: kept in _acking, never offered again; retry_acks() once storing works


@dataclass(frozen=True)
class SourceRow:
    """A row as the publisher sees it (its ``RowLike``)."""

    row_id: int
    topic: str
    payload: bytes


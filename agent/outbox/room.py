"""Room for an alarm on a full disk (docs/spec.md §6, version 2), for the outbox's owner thread.

The free-disk floor (``agent.outbox.policy``) drops only normal rows before the disk is
full. When a write still fails for lack of space, :meth:`Room.write` checkpoints the WAL
(it can hold megabytes of old frames) and tries the group again; if the group stores an
alarm, it then lets go of ``outbox.sqlite3-reserve`` (kept so that even the deletes have
room), evicts the oldest rows (normal first, then critical) for twice as many bytes each
try, and tries again. What gave way is handed to the first alarm put's result, so the
loop reports it like any other eviction.
"""
from __future__ import annotations

import logging
import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Tuple

from agent.outbox.policy import EvictionReport, plan_room
from agent.outbox.rows import PutResult
from agent.outbox.tables import Tables, checkpoint, oldest_sizes, rollback

log = logging.getLogger(__name__)

#: a request's outcome: (True, its value) or (False, the exception)
Outcome = Tuple[bool, Any]

#: tries after a write failed for lack of space: one checkpoint, then evictions of 1, 2,
#: 4... times the alarm batch's accounted bytes (SQLite needs more than that, in pages)
ROOM_ATTEMPTS = 8
#: bytes held in ``outbox.sqlite3-reserve`` and let go when the disk is full
RESERVE_BYTES = 256 * 1024


class Room:
    """Makes room on a full disk for one outbox file's alarms (module docs)."""

    def __init__(self, tables: Tables, reserve: Path) -> None:
        self.tables = tables
        self.reserve = reserve
        self._evicted: Optional[EvictionReport] = None  # what gave way in this group

    def write(self, conn: sqlite3.Connection, alarm_bytes: Sequence[int],
              transaction: Callable[[], List[Outcome]]) -> List[Outcome]:
        """Run ``transaction``; while it fails for lack of space, make room and run it again.
        ``alarm_bytes``: per request, the accounted bytes of a put holding a critical row."""
        outcomes = transaction()
        attempt, self._evicted = 0, None
        while attempt < ROOM_ATTEMPTS and disk_full(outcomes):
            attempt += 1
            self.tables.state.grown, self.tables.state.free_disk = 0, None
            if not self._make_room(conn, sum(alarm_bytes), attempt):
                break
            outcomes = transaction()
        if self._evicted is not None:
            outcomes = self._hand_over(alarm_bytes, outcomes)
        if attempt > 1:
            self.keep_reserve()
        return outcomes

    def keep_reserve(self) -> None:
        """(Re)create the reserve file beside the outbox, if there is room for it."""
        if self.reserve.exists():
            return
        try:
            with open(self.reserve, "wb") as f:
                f.write(b"\0" * RESERVE_BYTES)  # written, not sparse: the blocks are held
        except OSError:
            _unlink(self.reserve)

    def _make_room(self, conn: sqlite3.Connection, alarm_bytes: int, attempt: int) -> bool:
        """First give back the WAL's space; from the second attempt, if the group stores
        an alarm, the oldest rows give way. False when nothing more can be done."""
        if attempt > 1:
            needed = alarm_bytes << (attempt - 2)
            if needed <= 0:
                return False
            # the reserve file gives the deletes their WAL frames on a disk with 0 bytes free
            _unlink(self.reserve)
            if not self._evict_for_room(conn, needed):
                return False
        checkpoint(conn)
        return True

    def _hand_over(self, alarm_bytes: Sequence[int],
                   outcomes: List[Outcome]) -> List[Outcome]:
        """Tell the first alarm put what gave way for it (the loop reports evictions it
        learns of from a put's result)."""
        out = list(outcomes)
        for i, (alarm, (ok, value)) in enumerate(zip(alarm_bytes, outcomes)):
            if ok and alarm and isinstance(value, PutResult):
                out[i] = (True, replace(value, evicted=_merged(value.evicted, self._evicted)))
                break
        self._evicted = None
        return out

    def _evict_for_room(self, conn: sqlite3.Connection, needed: int) -> bool:
        tables = self.tables
        before = tables.state.copy()
        try:
            conn.execute("BEGIN IMMEDIATE")
            normal, critical = oldest_sizes(conn, False), oldest_sizes(conn, True)
            try:
                plan = plan_room(needed, oldest_normal=normal, oldest_critical=critical)
            finally:
                normal.close()
                critical.close()
            if not plan:
                rollback(conn)
                return False
            evicted = tables.evict(conn, plan.normal, plan.critical)
            if evicted is not None:
                tables.count_evictions(conn, evicted)
            conn.execute("COMMIT")
            self._evicted = _merged(evicted, self._evicted)
        except sqlite3.Error:  # not even a delete fits: the put fails, the caller keeps it
            rollback(conn)
            tables.state = before
            return False
        log.error("outbox %s: the disk is full; %s gave way to newer alarms", tables.path,
                  evicted)
        return True


def disk_full(outcomes: List[Outcome]) -> bool:
    return any(not ok and isinstance(value, sqlite3.Error) and "full" in str(value).lower()
               for ok, value in outcomes)


def _merged(a: Optional[EvictionReport], b: Optional[EvictionReport]) -> Optional[EvictionReport]:
    return b if a is None else a.merge(b)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass  # already gone, or never made

"""The outbox's SQL: every operation on the open file, run by the owner thread inside a group's transaction.

:class:`Tables` holds what the owner keeps in memory (lane totals, eviction counts, the
counters' mark, free disk) next to the SQL that changes it, so the two change together
and a failed request restores both (``state`` is replaced by a copy taken before).
Each method takes the connection and runs in the transaction the owner
(``agent/outbox/owner.py``) has open, and does not commit; only :meth:`Tables.load_state`,
at open, runs a transaction of its own.

Evictions are counted in the ``meta`` table (``outbox.evicted_totals``), and what has not
been reported yet (``outbox.pending_evictions``) survives a restart; ``settles`` of a
put clears the reported counts in the same transaction (``agent/outbox/store.py``).

A damaged row (``agent/outbox/rows.py``) is moved, as found, into the ``quarantine``
table with its reason — all of them at open, and each one ``next_batch`` reads — so
delivery goes on with the others; a damaged ``meta`` value of the outbox's own is reset
at open and kept in the same table.

The counters' floor (docs/spec.md §4): ``meta`` keeps ``outbox.mark``, the highest
``seq`` and ``boot`` ever stored here, written in the same transaction as the rows;
:meth:`Tables.counter_floor` combines it with every ``seq`` still in the outbox, its
quarantine table and the readable quarantined files.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, FrozenSet, Generator, List, Optional, Tuple, TypeVar

from agent.outbox.policy import EvictionReport, OutboxLimits, Totals, plan_eviction
from agent.outbox.rows import (DAMAGE_SQL, SELECT_ROWS, Damage, LaneStats, OutboxRow,
                               OutboxStats, PutResult, boot_of, checked_row, damage_of)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: the outbox's own meta keys (``status`` reads EVICTED_KEY from the file, read-only)
PENDING_KEY = "outbox.pending_evictions"
EVICTED_KEY = "outbox.evicted_totals"
MARK_KEY = "outbox.mark"


@dataclass
class State:
    """What the owner thread keeps in memory; replaced wholesale, so a snapshot is a copy."""

    totals: Totals = Totals()
    pending: Optional[EvictionReport] = None
    evicted: Tuple[int, int] = (0, 0)
    grown: int = 0  # accounted bytes added in the open transaction (for the disk floor)
    free_disk: Optional[int] = None  # measured once per transaction
    mark: Tuple[int, int] = (0, 0)  # highest (seq, boot) ever stored: meta outbox.mark

    def copy(self) -> "State":
        return replace(self)


class Tables:
    """The SQL operations of one outbox file, and the state they keep (module docs)."""

    def __init__(self, path: Path, limits: OutboxLimits, quarantine_dir: Path,
                 free_disk: Callable[[], int]) -> None:
        self.path, self.limits, self.quarantine_dir = path, limits, quarantine_dir
        self.free_disk = free_disk
        self.state = State()
        self.damage_found = 0
        self.measured_free: Optional[int] = None

    # -- at open -------------------------------------------------------------------------
    def load_state(self, conn: sqlite3.Connection) -> None:
        """Check every row and the outbox's meta values, setting aside what is damaged
        (module docs), then load the totals and counts. Commits on its own."""
        self.measured_free = int(self.free_disk())
        conn.execute("BEGIN IMMEDIATE")
        try:
            damaged = conn.execute(f"SELECT row_id, {DAMAGE_SQL} AS damage FROM outbox"
                                   " WHERE damage IS NOT NULL").fetchall()
            if damaged:
                self.quarantine_rows(conn, [(int(i), str(why)) for i, why in damaged])
            pending = self._checked_meta(conn, PENDING_KEY, _pending_of)
            evicted = self._checked_meta(conn, EVICTED_KEY, _evicted_of)
            mark = self._checked_meta(conn, MARK_KEY, _mark_of)
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        self.damage_found = conn.execute(
            "SELECT count(*) FROM quarantine WHERE reported = 0").fetchone()[0]
        self.state = State(totals=_lane_totals(conn), pending=pending, evicted=evicted,
                           mark=mark)

    def _checked_meta(self, conn: sqlite3.Connection, key: str,
                      read: Callable[[sqlite3.Connection], T]) -> T:
        """``read(conn)``; a damaged value is moved to the quarantine table and reset."""
        try:
            return read(conn)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            reason = f"damaged value reset: {exc}"[:300]
            log.error("outbox %s: meta %s is damaged (%s); reset and reported", self.path, key,
                      exc)
            conn.execute("INSERT INTO quarantine (meta_key, reason, payload)"
                         " SELECT key, ?, value FROM meta WHERE key = ?", (reason, key))
            conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            return read(conn)

    def quarantine_rows(self, conn: sqlite3.Connection, damaged: List[Tuple[int, str]]) -> None:
        """Move the rows ``(row_id, reason)`` into the quarantine table, as found."""
        for row_id, reason in damaged:
            log.error("outbox %s: row %d cannot be an event (%s); moved to its quarantine "
                      "table, delivery goes on", self.path, row_id, reason)
            conn.execute("INSERT INTO quarantine (row_id, reason, seq, critical, topic, payload,"
                         " jti, sensor, type, created, size) SELECT row_id, ?, seq, critical,"
                         " topic, payload, jti, sensor, type, created, size FROM outbox"
                         " WHERE row_id = ?", (reason, row_id))
            conn.execute("DELETE FROM outbox WHERE row_id = ?", (row_id,))
        self.state.totals = _lane_totals(conn)
        self.damage_found += len(damaged)

    # -- writes --------------------------------------------------------------------------
    def put(self, conn: sqlite3.Connection, rows: Tuple[OutboxRow, ...],
            settles: Optional[EvictionReport]) -> PutResult:
        state = self.state
        if state.free_disk is None:
            state.free_disk = self.measured_free = int(self.free_disk())
        stored = state.totals
        incoming = Totals.of((r.critical, r.size) for r in rows)
        saved = [replace(r, row_id=_insert(conn, r)) for r in rows]
        state.totals = stored + incoming
        self._raise_mark(conn, rows)
        normal, critical = oldest_sizes(conn, False), oldest_sizes(conn, True)
        try:
            plan = plan_eviction(stored, incoming, free_disk_bytes=state.free_disk - state.grown,
                                 limits=self.limits, oldest_normal=normal, oldest_critical=critical)
        finally:
            normal.close()
            critical.close()
        state.grown += incoming.bytes
        evicted = self.evict(conn, plan.normal, plan.critical)
        pending = state.pending if settles is None else (
            None if state.pending is None else state.pending.minus(settles))
        if pending != state.pending:
            _set_meta_json(conn, PENDING_KEY, None if pending is None else pending.as_data())
            state.pending = pending
        if evicted is not None:
            self.count_evictions(conn, evicted)
        return PutResult(tuple(saved), evicted)

    def count_evictions(self, conn: sqlite3.Connection, evicted: EvictionReport) -> None:
        """Add ``evicted`` to the totals and to the pending (unreported) report."""
        state = self.state
        state.evicted = (state.evicted[0] + evicted.normal_count,
                         state.evicted[1] + evicted.critical_count)
        _set_meta_json(conn, EVICTED_KEY, {"normal": state.evicted[0], "critical": state.evicted[1]})
        state.pending = evicted.merge(state.pending)
        _set_meta_json(conn, PENDING_KEY, state.pending.as_data())

    def _raise_mark(self, conn: sqlite3.Connection, rows: Tuple[OutboxRow, ...]) -> None:
        """Keep ``outbox.mark`` at the highest (seq, boot) stored (the counters' floor)."""
        if not rows:
            return
        newest = max(rows, key=lambda r: r.seq)
        mark = (max(self.state.mark[0], newest.seq),
                max(self.state.mark[1], boot_of(newest.payload)))
        if mark != self.state.mark:
            _set_meta_json(conn, MARK_KEY, {"seq": mark[0], "boot": mark[1]})
            self.state.mark = mark

    def evict(self, conn: sqlite3.Connection, normal: int,
              critical: int) -> Optional[EvictionReport]:
        """Delete the ``normal`` oldest normal and ``critical`` oldest critical rows
        (not counted yet: :meth:`count_evictions`)."""
        return EvictionReport.from_seqs(self._evict_lane(conn, False, normal),
                                        self._evict_lane(conn, True, critical))

    def _evict_lane(self, conn: sqlite3.Connection, critical: bool, count: int) -> List[int]:
        if count <= 0:
            return []
        found = conn.execute("SELECT seq, size FROM outbox WHERE critical = ? ORDER BY seq LIMIT ?",
                             (int(critical), count)).fetchall()
        seqs = [s for s, _ in found]
        conn.execute("DELETE FROM outbox WHERE critical = ? AND seq <= ?", (int(critical), seqs[-1]))
        self._forget(critical, len(found), sum(size for _, size in found))
        return seqs

    def _forget(self, critical: bool, rows: int, size: int) -> None:
        t = self.state.totals
        if critical:
            self.state.totals = replace(t, critical_rows=t.critical_rows - rows,
                                        critical_bytes=t.critical_bytes - size)
        else:
            self.state.totals = replace(t, normal_rows=t.normal_rows - rows,
                                        normal_bytes=t.normal_bytes - size)

    def ack(self, conn: sqlite3.Connection, row_ids: Tuple[int, ...]) -> int:
        deleted = 0
        for start in range(0, len(row_ids), 500):
            chunk = row_ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found = conn.execute(f"SELECT critical, size FROM outbox WHERE row_id IN ({marks})",
                                 chunk).fetchall()
            conn.execute(f"DELETE FROM outbox WHERE row_id IN ({marks})", chunk)
            for critical in (False, True):
                sizes = [size for c, size in found if bool(c) == critical]
                self._forget(critical, len(sizes), sum(sizes))
            deleted += len(found)
        return deleted

    def supersede(self, conn: sqlite3.Connection, sensor: str, type: str) -> int:
        ids = tuple(r[0] for r in conn.execute(
            "SELECT row_id FROM outbox WHERE sensor = ? AND type = ?", (sensor, type)))
        return self.ack(conn, ids)

    def settle_damage(self, conn: sqlite3.Connection, ids: List[int]) -> None:
        conn.executemany("UPDATE quarantine SET reported = 1 WHERE id = ?", [(i,) for i in ids])

    # -- reads ---------------------------------------------------------------------------
    def next_batch(self, conn: sqlite3.Connection, limit: int,
                   excluded: FrozenSet[int]) -> List[OutboxRow]:
        while True:
            rows, damaged = [], []
            for r in conn.execute(SELECT_ROWS + " ORDER BY critical DESC, seq LIMIT ?",
                                  (limit + len(excluded),)).fetchall():
                checked = checked_row(r)
                if isinstance(checked, str):
                    damaged.append((int(r[0]), checked))
                else:
                    rows.append(checked)
            if not damaged:
                return [r for r in rows if r.row_id not in excluded][:limit]
            # set aside, then read again: the batch is full and the good rows go out
            self.quarantine_rows(conn, damaged)

    def unreported_damage(self, conn: sqlite3.Connection, limit: int) -> List[Damage]:
        return [damage_of(r) for r in conn.execute(
            "SELECT id, reason, row_id, meta_key, seq, type FROM quarantine"
            " WHERE reported = 0 ORDER BY id LIMIT ?", (limit,))]

    def counter_floor(self, conn: sqlite3.Connection) -> Tuple[int, int]:
        seq, boot = _floor_of(conn)
        seq, boot = max(seq, self.state.mark[0]), max(boot, self.state.mark[1])
        for path in sorted(self.quarantine_dir.glob(f"{self.path.name}.*")):
            if not path.name.endswith(("-wal", "-shm")):
                other = _floor_of_file(path)
                seq, boot = max(seq, other[0]), max(boot, other[1])
        return seq + 1, boot

    def stats(self, conn: sqlite3.Connection) -> OutboxStats:
        lanes = {c: LaneStats(n, b, o) for c, n, b, o in conn.execute(
            "SELECT critical, count(*), sum(size), min(created) FROM outbox GROUP BY critical")}
        empty = LaneStats(0, 0, None)
        return OutboxStats(lanes.get(0, empty), lanes.get(1, empty), self.state.evicted[0],
                           self.state.evicted[1], self.state.pending)


# -- SQLite helpers -------------------------------------------------------------------
def _insert(conn: sqlite3.Connection, r: OutboxRow) -> Optional[int]:
    cur = conn.execute(
        "INSERT INTO outbox (seq, critical, topic, payload, jti, sensor, type, created, size)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (r.seq, int(r.critical), r.topic, r.payload, r.jti, r.sensor, r.type, r.created, r.size))
    return cur.lastrowid


def oldest_sizes(conn: sqlite3.Connection, critical: bool) -> Generator[int, None, None]:
    """Accounted sizes of one lane, oldest first; the query runs only if read."""
    cur: Optional[sqlite3.Cursor] = None
    try:
        cur = conn.execute("SELECT size FROM outbox WHERE critical = ? ORDER BY seq", (int(critical),))
        for (size,) in cur:
            yield int(size)
    finally:
        if cur is not None:
            cur.close()


def _lane_totals(conn: sqlite3.Connection) -> Totals:
    lanes = {c: (n, b) for c, n, b in conn.execute(
        "SELECT critical, count(*), coalesce(sum(size), 0) FROM outbox GROUP BY critical")}
    n, c = lanes.get(0, (0, 0)), lanes.get(1, (0, 0))
    return Totals(n[0], n[1], c[0], c[1])


def _pending_of(conn: sqlite3.Connection) -> Optional[EvictionReport]:
    found = _meta_json(conn, PENDING_KEY)
    return None if found is None else EvictionReport.from_data(found)


def _evicted_of(conn: sqlite3.Connection) -> Tuple[int, int]:
    found = _meta_json(conn, EVICTED_KEY) or {"normal": 0, "critical": 0}
    counts = (found["normal"], found["critical"])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        raise ValueError(f"not two counts >= 0: {found}")
    return counts


def get_meta(conn: sqlite3.Connection, key: str) -> Optional[str]:
    found = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if found is None else str(found[0])


def set_meta(conn: sqlite3.Connection, key: str, value: Optional[str]) -> None:
    """Store ``value`` under ``key``; None deletes it."""
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))


def _meta_json(conn: sqlite3.Connection, key: str) -> Optional[Dict[str, Any]]:
    found = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if found is None else dict(json.loads(found[0]))  # as stored: not str()


def _set_meta_json(conn: sqlite3.Connection, key: str, value: Optional[Dict[str, Any]]) -> None:
    set_meta(conn, key, None if value is None else json.dumps(value))


def _floor_of(conn: sqlite3.Connection) -> Tuple[int, int]:
    """Highest ``(seq, boot)`` in this connection's rows, quarantine table and mark."""
    seq, boot = 0, 0
    for table in ("outbox", "quarantine"):
        found = conn.execute(f"SELECT seq, payload FROM {table} WHERE typeof(seq) = 'integer'"
                             " ORDER BY seq DESC LIMIT 1").fetchone()
        if found is not None:
            seq, boot = max(seq, int(found[0])), max(boot, boot_of(found[1]))
    mark = _mark_of(conn)
    return max(seq, mark[0]), max(boot, mark[1])


def _floor_of_file(path: Path) -> Tuple[int, int]:
    """:func:`_floor_of` a quarantined file, read-only; (0, 0) if it cannot be read."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return 0, 0
    try:
        for query in (lambda: _floor_of(conn),  # a file of an older schema has no quarantine
                      lambda: conn.execute("SELECT coalesce(max(seq), 0), 0 FROM outbox"
                                           " WHERE typeof(seq) = 'integer'").fetchone()):
            try:
                found = query()
                return int(found[0]), int(found[1])
            except (sqlite3.Error, ValueError, TypeError):
                continue
        return 0, 0
    finally:
        conn.close()


def _mark_of(conn: sqlite3.Connection) -> Tuple[int, int]:
    """``outbox.mark`` as ``(seq, boot)``; ValueError if it is damaged, (0, 0) if absent."""
    found = _meta_json(conn, MARK_KEY)
    if found is None:
        return 0, 0
    seq, boot = found.get("seq"), found.get("boot")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (seq, boot)):
        raise ValueError(f"not two whole numbers >= 0: {found}")
    return int(seq), int(boot)  # type: ignore[arg-type]


def checkpoint(conn: sqlite3.Connection) -> None:
    """Move the WAL into the file and truncate it, if SQLite can."""
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # the WAL stays; the next write's outcome tells whether there was room


def rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # SQLite already rolled back (e.g. after SQLITE_FULL)

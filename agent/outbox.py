"""The durable outbox: every signed event sits here until the broker's PUBACK (SPEC §6).

Theory of operation
-------------------
One SQLite file (``{state_dir}/outbox.sqlite3``) in WAL mode with ``synchronous=FULL``:
a commit has reached the disk when ``put`` returns, so a kill -9 or a power cut loses
nothing that was stored. One *owner thread* does every SQLite call; the loop and the
publisher hand it requests through a queue and get a ``concurrent.futures.Future`` back
(the plain methods wait on it). The owner takes everything queued (up to
``group_max`` requests) into one transaction and resolves the futures only after the
COMMIT, so a burst of events costs one fsync, not one per event ("group commit"), and
nobody learns of a row — not even ``next_batch`` — before it is durable.

Order out: the critical lane first, then ``seq`` order. ``ack`` deletes (after PUBACK).
Eviction (what goes when the buffer is full) is decided by ``agent.outbox_policy`` inside
the same transaction as the insert; each eviction is counted, and what has not yet been
reported is kept in the ``meta`` table so that a restart does not lose the count.

Reporting evictions without recursion: ``put`` returns the :class:`EvictionReport` of
that put, and the outbox keeps the *pending* (unreported) total. The loop reports with::

    pending = outbox.pending_evictions()
    if pending and now >= next_report_at:          # e.g. at most once a minute
        row = make_row("buffer.evicted", pending.as_data())   # signed, seq allocated
        outbox.put([row], settles=pending)
        next_report_at = now + 60

``settles`` clears the reported counts in the same transaction. If that put itself evicts
(a full buffer), those evictions become the new pending total and go into the *next*
report, so one report never triggers another immediately, and a full buffer cannot churn
itself through reports faster than the loop's interval.

A file that fails ``PRAGMA quick_check`` (or is not a database, or has a schema this code
did not make) is moved, with its ``-wal``/``-shm``, into the quarantine folder under a
timestamped name, and a fresh file takes its place (``agent/outbox_file.py``);
``Outbox.quarantined`` says so, and the loop reports it as a ``buffer.quarantined``
event. A locked or unreadable file is not corruption: that raises
:class:`~agent.errors.OutboxError` and nothing is moved.

Deletes after PUBACK are not fsynced on their own: a group holding only acks and reads
commits with ``synchronous=NORMAL`` (in WAL mode that skips the fsync, never the
integrity), and the next group that stores a row (``synchronous=FULL``) makes them durable
with it. A kill -9 loses nothing (the OS has the write); a power cut can at worst bring
back rows that were already delivered, which are then sent again — a duplicate with the
same ``jti`` that the cloud drops (SPEC §4), never a lost event. This keeps a backlog drain
from costing one fsync per PUBACK.

Row ids are never reused (``AUTOINCREMENT``), so an ``ack`` for a row that was evicted
while in flight cannot delete a newer row.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import sqlite3
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import (Any, Callable, Dict, Generator, Iterable, List, Optional, Sequence, Tuple,
                    TypeVar, Union)

from agent.errors import OutboxError
from agent.outbox_file import QuarantineInfo, checkpoint_and_close, open_checked
from agent.outbox_policy import EvictionReport, OutboxLimits, Totals, plan_eviction, row_size

T = TypeVar("T")
PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["Outbox", "OutboxRow", "PutResult", "OutboxStats", "LaneStats", "QuarantineInfo",
           "OutboxLimits", "EvictionReport"]

_SELECT = "SELECT row_id, seq, critical, topic, payload, jti, sensor, type, created FROM outbox"
_PENDING_KEY = "outbox.pending_evictions"
_EVICTED_KEY = "outbox.evicted_totals"


@dataclass(frozen=True)
class OutboxRow:
    """One signed event waiting for its PUBACK; ``payload`` is the JWT exactly as signed.

    ``row_id`` is None until ``put`` has stored the row; the rows ``put`` returns and
    ``next_batch`` gives carry it, and ``ack`` takes it.
    """

    seq: int
    critical: bool
    topic: str
    payload: bytes
    jti: str
    sensor: str
    type: str
    created: float
    row_id: Optional[int] = None

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 0:
            raise ValueError(f"OutboxRow.seq must be a whole number >= 0, got {self.seq!r}")
        if not isinstance(self.payload, bytes) or not self.payload:
            raise ValueError("OutboxRow.payload must be the signed JWT as non-empty bytes")
        if not self.topic:
            raise ValueError("OutboxRow.topic cannot be empty")

    @property
    def size(self) -> int:
        """Accounted bytes (what ``buffer.max_mb`` limits)."""
        text = sum(len(s.encode("utf-8")) for s in (self.topic, self.jti, self.sensor, self.type))
        return row_size(payload=len(self.payload), text_fields=text)


@dataclass(frozen=True)
class PutResult:
    rows: Tuple[OutboxRow, ...]          # the rows as stored, with their row_id
    evicted: Optional[EvictionReport]    # what this put pushed out, if anything


@dataclass(frozen=True)
class LaneStats:
    rows: int
    bytes: int
    oldest_created: Optional[float]


@dataclass(frozen=True)
class OutboxStats:
    normal: LaneStats
    critical: LaneStats
    evicted_normal_total: int
    evicted_critical_total: int
    pending_evictions: Optional[EvictionReport]

    @property
    def depth(self) -> int:
        return self.normal.rows + self.critical.rows

    @property
    def evicted_total(self) -> int:
        return self.evicted_normal_total + self.evicted_critical_total


@dataclass
class _State:
    """What the owner thread keeps in memory; replaced wholesale, so a snapshot is a copy."""

    totals: Totals = Totals()
    pending: Optional[EvictionReport] = None
    evicted: Tuple[int, int] = (0, 0)
    grown: int = 0  # accounted bytes added in the open transaction (for the disk floor)
    free_disk: Optional[int] = None  # measured once per transaction

    def copy(self) -> "_State":
        return replace(self)


@dataclass
class _Request:
    fn: Callable[[sqlite3.Connection], Any]
    future: "Future[Any]" = field(default_factory=Future)
    #: False for acks and reads: their group may commit without an fsync (module docs)
    durable: bool = True


class Outbox:
    """The durable event buffer. Make one with :meth:`Outbox.open`; close it with :meth:`close`.

    Example::

        with Outbox.open(state_dir / "outbox.sqlite3", OutboxLimits()) as outbox:
            outbox.put([row])                   # returns once on disk
            batch = outbox.next_batch(20)       # critical first, then seq
            outbox.ack([r.row_id for r in batch])
    """

    def __init__(self, owner: "_Owner") -> None:  # use Outbox.open
        self._owner = owner
        self.path = owner.path
        self.quarantined: Optional[QuarantineInfo] = owner.quarantined

    @classmethod
    def open(cls, path: PathLike, limits: OutboxLimits = OutboxLimits(), *,
             quarantine_dir: Optional[PathLike] = None,
             free_disk: Optional[Callable[[], int]] = None,
             group_max: int = 512, timeout: float = 120.0) -> "Outbox":
        """Open (or create) the outbox file, checking it first.

        :param path: the SQLite file; its folder must exist and be writable.
        :param limits: the ``buffer:`` config section.
        :param quarantine_dir: where corrupt files go (default: ``quarantine/`` beside ``path``).
        :param free_disk: returns free bytes on the file system (default:
            ``shutil.disk_usage`` of the file's folder); tests inject their own.
        :param group_max: most requests committed in one transaction.
        :raises OutboxError: the file is locked, unreadable, or its folder is not writable.
        """
        p = Path(path)
        qdir = Path(quarantine_dir) if quarantine_dir is not None else p.parent / "quarantine"
        disk = free_disk if free_disk is not None else (lambda: shutil.disk_usage(p.parent).free)
        owner = _Owner(p, limits, qdir, disk, group_max)
        owner.start()
        owner.opened.result(timeout)
        return cls(owner)

    # -- writes ---------------------------------------------------------------------
    def put(self, rows: Sequence[OutboxRow], *, settles: Optional[EvictionReport] = None,
            timeout: Optional[float] = None) -> PutResult:
        """Store ``rows``; returns once they are committed to disk.

        ``settles``: an eviction report the caller is reporting with these rows (see the
        module docs); its counts leave the pending total in the same transaction.
        """
        return self.submit_put(rows, settles=settles).result(timeout)

    def submit_put(self, rows: Sequence[OutboxRow], *,
                   settles: Optional[EvictionReport] = None) -> "Future[PutResult]":
        """Like :meth:`put`, without waiting; the future resolves after the commit."""
        batch = tuple(rows)
        return self._owner.submit(lambda conn: self._owner.do_put(conn, batch, settles))

    def ack(self, row_ids: Iterable[int], *, timeout: Optional[float] = None) -> int:
        """Delete delivered rows; returns how many were still there (evicted ones are not)."""
        return self.submit_ack(row_ids).result(timeout)

    def submit_ack(self, row_ids: Iterable[int]) -> "Future[int]":
        """Like :meth:`ack` without waiting (for paho's callback thread)."""
        ids = tuple(row_ids)
        return self._owner.submit(lambda conn: self._owner.do_ack(conn, ids), durable=False)

    def supersede(self, sensor: str, type: str, *, timeout: Optional[float] = None) -> int:
        """Delete stored ``type`` events of ``sensor`` not yet delivered (a newer one
        replaces them: heartbeats must not pile up while offline). Returns how many."""
        def run(conn: sqlite3.Connection) -> int:
            ids = tuple(r[0] for r in conn.execute(
                "SELECT row_id FROM outbox WHERE sensor = ? AND type = ?", (sensor, type)))
            return self._owner.do_ack(conn, ids)
        return self._owner.submit(run).result(timeout)

    def set_meta(self, key: str, value: Optional[str], *, timeout: Optional[float] = None) -> None:
        """Store a key/value for other modules (None deletes). Keys ``outbox.*`` are ours."""
        def run(conn: sqlite3.Connection) -> None:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
        self._owner.submit(run).result(timeout)

    # -- reads ----------------------------------------------------------------------
    def next_batch(self, limit: int, exclude_row_ids: Iterable[int] = (), *,
                   timeout: Optional[float] = None) -> List[OutboxRow]:
        """Up to ``limit`` stored rows not in ``exclude_row_ids`` (in flight): critical
        lane first, then ``seq`` order."""
        excluded = frozenset(exclude_row_ids)

        def run(conn: sqlite3.Connection) -> List[OutboxRow]:
            cur = conn.execute(_SELECT + " ORDER BY critical DESC, seq LIMIT ?",
                               (limit + len(excluded),))
            rows = [_row(r) for r in cur]
            return [r for r in rows if r.row_id not in excluded][:limit]
        return self._owner.submit(run, durable=False).result(timeout)

    def get_meta(self, key: str, *, timeout: Optional[float] = None) -> Optional[str]:
        def run(conn: sqlite3.Connection) -> Optional[str]:
            found = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            return None if found is None else str(found[0])
        return self._owner.submit(run).result(timeout)

    def pending_evictions(self, *, timeout: Optional[float] = None) -> Optional[EvictionReport]:
        """Evictions not yet reported with ``put(..., settles=...)``."""
        return self._owner.submit(lambda conn: self._owner.state.pending).result(timeout)

    def stats(self, *, timeout: Optional[float] = None) -> OutboxStats:
        """Depth, bytes and oldest event per lane, and eviction counts (for ``status``)."""
        return self._owner.submit(self._owner.do_stats).result(timeout)

    @property
    def commits(self) -> int:
        """Transactions committed since open (diagnostics: shows group commit at work)."""
        return self._owner.commits

    # -- life cycle -----------------------------------------------------------------
    def close(self, timeout: float = 30.0) -> None:
        """Finish queued work, checkpoint the WAL into the file, and close. Idempotent."""
        self._owner.stop(timeout)

    def __enter__(self) -> "Outbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Outbox {str(self.path)!r}{' closed' if self._owner.closed else ''}>"


def _row(r: Sequence[Any]) -> OutboxRow:
    return OutboxRow(seq=r[1], critical=bool(r[2]), topic=r[3], payload=bytes(r[4]), jti=r[5],
                     sensor=r[6], type=r[7], created=r[8], row_id=r[0])


class _Owner(threading.Thread):
    """The one thread that touches SQLite."""

    def __init__(self, path: Path, limits: OutboxLimits, quarantine_dir: Path,
                 free_disk: Callable[[], int], group_max: int) -> None:
        super().__init__(name=f"outbox:{path.name}", daemon=True)
        self.path, self.limits, self.quarantine_dir = path, limits, quarantine_dir
        self.free_disk, self.group_max = free_disk, max(1, group_max)
        self.requests: "queue.Queue[Optional[_Request]]" = queue.Queue()
        self.opened: "Future[None]" = Future()
        self.quarantined: Optional[QuarantineInfo] = None
        self.state = _State()
        self.closed = False
        self.commits = 0
        self._lock = threading.Lock()
        self._conn: Optional[sqlite3.Connection] = None
        self._synchronous = "FULL"  # what outbox_file.connect() set

    def submit(self, fn: Callable[[sqlite3.Connection], T], *,
               durable: bool = True) -> "Future[T]":
        request = _Request(fn, durable=durable)
        with self._lock:
            if self.closed:
                raise OutboxError(f"the outbox {self.path} is closed",
                                  hint="this is a bug in the caller: open it again")
            self.requests.put(request)
        return request.future

    def stop(self, timeout: float) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self.requests.put(None)
        self.join(timeout)

    # -- the thread -----------------------------------------------------------------
    def run(self) -> None:
        try:
            self._conn, self.quarantined = open_checked(self.path, self.quarantine_dir)
            self._load_state(self._conn)
        except BaseException as exc:  # noqa: B902 - handed to the caller of open()
            with self._lock:
                self.closed = True
            self.opened.set_exception(exc)
            return
        self.opened.set_result(None)
        conn = self._conn
        try:
            while True:
                group, stop = self._take_group()
                if group:
                    self._run_group(conn, group)
                if stop:
                    break
        finally:
            self._fail_leftovers()
            checkpoint_and_close(conn)

    def _take_group(self) -> Tuple[List[_Request], bool]:
        first = self.requests.get()
        if first is None:
            return [], True
        group = [first]
        while len(group) < self.group_max:
            try:
                nxt = self.requests.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return group, True
            group.append(nxt)
        return group, False

    def _run_group(self, conn: sqlite3.Connection, group: List[_Request]) -> None:
        """One transaction for the whole group; futures resolve only after COMMIT."""
        start = self.state.copy()
        try:
            outcomes = self._transaction(conn, group)
        except BaseException as exc:  # a bug or a broken connection: nobody may hang
            _rollback(conn)
            self.state = start
            outcomes = [(False, exc)] * len(group)
        self.state.grown, self.state.free_disk = 0, None
        for request, (ok, value) in zip(group, outcomes):
            if ok:
                request.future.set_result(value)
            else:
                request.future.set_exception(_as_outbox_error(value, self.path))

    def _transaction(self, conn: sqlite3.Connection,
                     group: List[_Request]) -> List[Tuple[bool, Any]]:
        start = self.state.copy()
        synchronous = "FULL" if any(r.durable for r in group) else "NORMAL"
        if synchronous != self._synchronous:  # outside a transaction, as SQLite requires
            conn.execute(f"PRAGMA synchronous={synchronous}")
            self._synchronous = synchronous
        conn.execute("BEGIN IMMEDIATE")
        outcomes: List[Tuple[bool, Any]] = []
        for request in group:
            before = self.state.copy()
            conn.execute("SAVEPOINT request")
            try:
                outcomes.append((True, request.fn(conn)))
                conn.execute("RELEASE request")
            except Exception as exc:  # one bad request must not sink the others
                outcomes.append((False, exc))
                self.state = before
                try:
                    conn.execute("ROLLBACK TO request")
                    conn.execute("RELEASE request")
                except sqlite3.Error:  # SQLite rolled the whole transaction back (disk full)
                    self.state = start
                    _rollback(conn)
                    return [(False, exc)] * len(group)
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.state = start
            _rollback(conn)
            return [(False, exc)] * len(group)
        self.commits += 1
        return outcomes

    def _fail_leftovers(self) -> None:
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                request.future.set_exception(OutboxError(f"the outbox {self.path} was closed"))

    # -- the work (called on this thread, inside the group's transaction) -----------
    def _load_state(self, conn: sqlite3.Connection) -> None:
        totals = _lane_totals(conn)
        pending = _meta_json(conn, _PENDING_KEY)
        evicted = _meta_json(conn, _EVICTED_KEY) or {"normal": 0, "critical": 0}
        self.state = _State(totals=totals,
                            pending=None if pending is None else EvictionReport.from_data(pending),
                            evicted=(int(evicted["normal"]), int(evicted["critical"])))

    def do_put(self, conn: sqlite3.Connection, rows: Tuple[OutboxRow, ...],
               settles: Optional[EvictionReport]) -> PutResult:
        state = self.state
        if state.free_disk is None:
            state.free_disk = int(self.free_disk())
        stored = state.totals
        incoming = Totals.of((r.critical, r.size) for r in rows)
        saved = []
        for r in rows:
            cur = conn.execute(
                "INSERT INTO outbox (seq, critical, topic, payload, jti, sensor, type, created, size)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (r.seq, int(r.critical), r.topic, r.payload, r.jti, r.sensor, r.type, r.created,
                 r.size))
            saved.append(replace(r, row_id=cur.lastrowid))
        state.totals = stored + incoming
        normal, critical = _sizes(conn, False), _sizes(conn, True)
        try:
            plan = plan_eviction(stored, incoming, free_disk_bytes=state.free_disk - state.grown,
                                 limits=self.limits, oldest_normal=normal, oldest_critical=critical)
        finally:
            normal.close()
            critical.close()
        state.grown += incoming.bytes
        evicted = EvictionReport.from_seqs(self._evict(conn, False, plan.normal),
                                           self._evict(conn, True, plan.critical))
        pending = state.pending if settles is None else (
            None if state.pending is None else state.pending.minus(settles))
        if evicted is not None:
            pending = evicted.merge(pending)
            state.evicted = (state.evicted[0] + evicted.normal_count,
                             state.evicted[1] + evicted.critical_count)
            _set_meta_json(conn, _EVICTED_KEY,
                           {"normal": state.evicted[0], "critical": state.evicted[1]})
        if pending != state.pending:
            _set_meta_json(conn, _PENDING_KEY, None if pending is None else pending.as_data())
            state.pending = pending
        return PutResult(tuple(saved), evicted)

    def _evict(self, conn: sqlite3.Connection, critical: bool, count: int) -> List[int]:
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

    def do_ack(self, conn: sqlite3.Connection, row_ids: Tuple[int, ...]) -> int:
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

    def do_stats(self, conn: sqlite3.Connection) -> OutboxStats:
        lanes = {c: LaneStats(n, b, o) for c, n, b, o in conn.execute(
            "SELECT critical, count(*), sum(size), min(created) FROM outbox GROUP BY critical")}
        empty = LaneStats(0, 0, None)
        return OutboxStats(lanes.get(0, empty), lanes.get(1, empty), self.state.evicted[0],
                           self.state.evicted[1], self.state.pending)


# -- SQLite helpers -------------------------------------------------------------------
def _sizes(conn: sqlite3.Connection, critical: bool) -> Generator[int, None, None]:
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


def _meta_json(conn: sqlite3.Connection, key: str) -> Optional[Dict[str, Any]]:
    found = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if found is None else dict(json.loads(found[0]))


def _set_meta_json(conn: sqlite3.Connection, key: str, value: Optional[Dict[str, Any]]) -> None:
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # SQLite already rolled back (e.g. after SQLITE_FULL)


def _as_outbox_error(exc: BaseException, path: Path) -> BaseException:
    if not isinstance(exc, sqlite3.Error):
        return exc
    text = str(exc)
    hint = ("free some space on that file system, or lower buffer.max_mb" if "full" in text
            else "check the disk and the permissions of the state directory")
    error = OutboxError(f"the outbox {path} could not be written: {text}", hint=hint)
    error.__cause__ = exc
    return error

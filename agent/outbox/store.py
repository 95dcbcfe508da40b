"""The durable outbox: every signed event sits here until the broker's PUBACK (docs/spec.md §6).

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
Eviction (what goes when the buffer is full) is decided by ``agent.outbox.policy`` inside
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
timestamped name, and a fresh file takes its place (``agent/outbox/file.py``);
``Outbox.quarantined`` says so, and the loop reports it as a ``buffer.quarantined``
event. A locked or unreadable file is not corruption: that raises
:class:`~agent.errors.OutboxError` and nothing is moved.

Deletes after PUBACK are not fsynced on their own: a group holding only acks and reads
commits with ``synchronous=NORMAL`` (in WAL mode that skips the fsync, never the
integrity), and the next group that stores a row (``synchronous=FULL``) makes them durable
with it. A kill -9 loses nothing (the OS has the write); a power cut can at worst bring
back rows that were already delivered, which are then sent again — a duplicate with the
same ``jti`` that the cloud drops (docs/spec.md §4), never a lost event. This keeps a backlog drain
from costing one fsync per PUBACK.

Row ids are never reused (``AUTOINCREMENT``), so an ``ack`` for a row that was evicted
while in flight cannot delete a newer row.

A full disk (docs/spec.md §6, version 2): the free-disk floor drops only normal rows
(``agent.outbox.policy``). Under the floor each commit is followed by a WAL checkpoint,
so the WAL does not hold the last megabytes. When a write really fails for lack of
space, the owner checkpoints and retries; if the group stores an alarm, it then lets go
of ``outbox.sqlite3-reserve`` (kept so that even the deletes have room), evicts the
oldest rows (normal first, then critical) for twice as many bytes each try, and retries.

Damaged content (docs/spec.md §6): a sound file can still hold a row that cannot be an
event (an empty or TEXT payload, a negative ``seq``, a value of the wrong type: a bit
flip or a hand edit passes ``quick_check``). Every row is checked when read — all of them
at open, and each one ``next_batch`` reads — and a bad one is moved, as found, into the
``quarantine`` table with its reason, so delivery goes on with the others. A damaged
``meta`` value of the outbox's own is reset at open and kept in the same table.
``unreported_damage()`` lists what the cloud has not been told yet; ``settle_damage()``
marks it told.

The counters' floor (docs/spec.md §4): ``meta`` keeps ``outbox.mark``, the highest
``seq`` and ``boot`` ever stored here (rows delivered long ago included), written in the
same transaction as the rows. :meth:`Outbox.counter_floor` combines it with every ``seq``
still in the outbox, its quarantine table and the readable quarantined files, so the
counters never hand out a number this device has used, even when their own files are
lost or stale.
"""
from __future__ import annotations

import base64
import json
import logging
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
from agent.outbox.file import QuarantineInfo, checkpoint_and_close, open_checked
from agent.outbox.policy import (EvictionReport, OutboxLimits, Totals, plan_eviction, plan_room,
                                 row_size)

log = logging.getLogger(__name__)
T = TypeVar("T")
PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["Outbox", "OutboxRow", "PutResult", "OutboxStats", "LaneStats", "QuarantineInfo",
           "OutboxLimits", "EvictionReport", "Damage"]

_PENDING_KEY = "outbox.pending_evictions"
_EVICTED_KEY = "outbox.evicted_totals"
_MARK_KEY = "outbox.mark"
#: why a stored row cannot be an event, or NULL (SQLite keeps whatever type it is given)
_DAMAGE = """CASE
    WHEN typeof(seq) != 'integer' THEN 'seq is ' || typeof(seq) || ', not a whole number'
    WHEN seq < 1 THEN 'impossible seq ' || seq
    WHEN typeof(payload) != 'blob' THEN 'payload is ' || typeof(payload) || ', not the signed JWT as bytes'
    WHEN length(payload) = 0 THEN 'empty payload'
    WHEN typeof(critical) != 'integer' OR critical NOT IN (0, 1)
        THEN 'critical is ' || substr(quote(critical), 1, 40) || ', not 0 or 1'
    WHEN typeof(topic) != 'text' OR topic = '' THEN 'topic is ' || typeof(topic) || ' or empty'
    WHEN typeof(jti) != 'text' OR jti = '' THEN 'jti is ' || typeof(jti) || ' or empty'
    WHEN typeof(sensor) != 'text' THEN 'sensor is ' || typeof(sensor) || ', not text'
    WHEN typeof(type) != 'text' THEN 'type is ' || typeof(type) || ', not text'
    WHEN typeof(created) NOT IN ('integer', 'real') THEN 'created is ' || typeof(created) || ', not a time'
    WHEN typeof(size) != 'integer' OR size < 0 THEN 'size is ' || substr(quote(size), 1, 40) || ', not a byte count'
END"""
_SELECT = ("SELECT row_id, seq, critical, topic, payload, jti, sensor, type, created, "
           + _DAMAGE + " FROM outbox")


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


@dataclass(frozen=True)
class Damage:
    """A row or ``meta`` value set aside (docs/spec.md §6), for ``buffer.row_quarantined``
    (``row_id`` set) or ``buffer.meta_reset`` (``key`` set)."""

    id: int
    reason: str
    row_id: Optional[int] = None
    key: Optional[str] = None
    seq: Optional[int] = None
    type: Optional[str] = None

    def as_data(self) -> Dict[str, Any]:
        if self.row_id is None:
            return {"key": self.key, "reason": self.reason}
        data: Dict[str, Any] = {"row_id": self.row_id, "reason": self.reason}
        if self.seq is not None:
            data["seq"] = self.seq
        if self.type is not None:
            data["type"] = self.type
        return data


@dataclass
class _State:
    """What the owner thread keeps in memory; replaced wholesale, so a snapshot is a copy."""

    totals: Totals = Totals()
    pending: Optional[EvictionReport] = None
    evicted: Tuple[int, int] = (0, 0)
    grown: int = 0  # accounted bytes added in the open transaction (for the disk floor)
    free_disk: Optional[int] = None  # measured once per transaction
    mark: Tuple[int, int] = (0, 0)  # highest (seq, boot) ever stored: meta outbox.mark

    def copy(self) -> "_State":
        return replace(self)


@dataclass
class _Request:
    fn: Callable[[sqlite3.Connection], Any]
    future: "Future[Any]" = field(default_factory=Future)
    #: False for acks and reads: their group may commit without an fsync (module docs)
    durable: bool = True
    #: accounted bytes of a put holding a critical row: what a full disk must make room for
    alarm_bytes: int = 0


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
        self.limits = owner.limits
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
        alarm_bytes = sum(r.size for r in batch) if any(r.critical for r in batch) else 0
        return self._owner.submit(lambda conn: self._owner.do_put(conn, batch, settles),
                                  alarm_bytes=alarm_bytes)

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
            while True:
                rows, damaged = [], []
                for r in conn.execute(_SELECT + " ORDER BY critical DESC, seq LIMIT ?",
                                      (limit + len(excluded),)).fetchall():
                    checked = _checked_row(r)
                    if isinstance(checked, str):
                        damaged.append((int(r[0]), checked))
                    else:
                        rows.append(checked)
                if not damaged:
                    return [r for r in rows if r.row_id not in excluded][:limit]
                # set aside, then read again: the batch is full and the good rows go out
                self._owner.quarantine_rows(conn, damaged)
        return self._owner.submit(run, durable=False).result(timeout)

    def unreported_damage(self, limit: int = 100, *,
                          timeout: Optional[float] = None) -> List[Damage]:
        """Rows and meta values set aside that :meth:`settle_damage` has not settled."""
        def run(conn: sqlite3.Connection) -> List[Damage]:
            return [_damage(r) for r in conn.execute(
                "SELECT id, reason, row_id, meta_key, seq, type FROM quarantine"
                " WHERE reported = 0 ORDER BY id LIMIT ?", (limit,))]
        return self._owner.submit(run, durable=False).result(timeout)

    def settle_damage(self, found: Iterable[Damage], *, timeout: Optional[float] = None) -> None:
        """Mark ``found`` as reported (call once its events are stored)."""
        ids = [d.id for d in found]

        def run(conn: sqlite3.Connection) -> None:
            conn.executemany("UPDATE quarantine SET reported = 1 WHERE id = ?",
                             [(i,) for i in ids])
        self._owner.submit(run).result(timeout)

    @property
    def damage_found(self) -> int:
        """How many rows and meta values were set aside since open, plus the unreported
        ones found at open: when it changes, :meth:`unreported_damage` has news."""
        return self._owner.damage_found

    def counter_floor(self, *, timeout: Optional[float] = None) -> Tuple[int, int]:
        """``(seq, boot)``: the lowest ``seq`` never stored here and the highest ``boot``
        seen, over the mark, the rows, the quarantine table and the quarantined files that
        can still be read (module docs); ``(1, 0)`` when there is nothing."""
        def run(conn: sqlite3.Connection) -> Tuple[int, int]:
            seq, boot = _floor_of(conn)
            seq, boot = max(seq, self._owner.state.mark[0]), max(boot, self._owner.state.mark[1])
            for path in sorted(self._owner.quarantine_dir.glob(f"{self.path.name}.*")):
                if not path.name.endswith(("-wal", "-shm")):
                    other = _floor_of_file(path)
                    seq, boot = max(seq, other[0]), max(boot, other[1])
            return seq + 1, boot
        return self._owner.submit(run, durable=False).result(timeout)

    @property
    def disk_low(self) -> Optional[int]:
        """Free bytes on the outbox's file system if, when last measured (at open, then at
        every put), they were below ``limits.min_free_mb``; else None (``buffer.disk_low``)."""
        free = self._owner.measured_free
        return free if free is not None and free < self.limits.min_free_bytes else None

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


def _checked_row(r: Sequence[Any]) -> Union[OutboxRow, str]:
    """The row read with ``_SELECT``, or why it cannot be an event."""
    if r[9] is not None:
        return str(r[9])
    # a payload that is bytes but not a JWT is sent: the cloud's signature check refuses it
    try:
        return OutboxRow(seq=r[1], critical=bool(r[2]), topic=r[3], payload=bytes(r[4]), jti=r[5],
                         sensor=r[6], type=r[7], created=float(r[8]), row_id=r[0])
    except (TypeError, ValueError) as exc:
        return str(exc)


def _damage(r: Sequence[Any]) -> Damage:
    seq = r[4] if isinstance(r[4], int) else None
    return Damage(id=r[0], reason=str(r[1]), row_id=r[2], key=r[3], seq=seq,
                  type=r[5][:100] if isinstance(r[5], str) else None)


def _boot_of(payload: Any) -> int:
    """The ``boot`` claim of a stored JWT (no signature check: only a floor), else 0."""
    try:
        claims = bytes(payload).split(b".")[1]
        boot = json.loads(base64.urlsafe_b64decode(claims + b"=" * (-len(claims) % 4)))["boot"]
    except (IndexError, KeyError, TypeError, ValueError):
        return 0
    return boot if isinstance(boot, int) and not isinstance(boot, bool) and boot > 0 else 0


def _floor_of(conn: sqlite3.Connection) -> Tuple[int, int]:
    """Highest ``(seq, boot)`` in this connection's rows, quarantine table and mark."""
    seq, boot = 0, 0
    for table in ("outbox", "quarantine"):
        found = conn.execute(f"SELECT seq, payload FROM {table} WHERE typeof(seq) = 'integer'"
                             " ORDER BY seq DESC LIMIT 1").fetchone()
        if found is not None:
            seq, boot = max(seq, int(found[0])), max(boot, _boot_of(found[1]))
    mark = _mark_of(conn)
    return max(seq, mark[0]), max(boot, mark[1])


def _floor_of_file(path: Path) -> Tuple[int, int]:
    """:func:`_floor_of` a quarantined file, read-only; (0, 0) if it cannot be read."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return 0, 0
    try:
        seq, boot = 0, 0
        for query in (lambda: _floor_of(conn),  # a file of an older schema has no quarantine
                      lambda: conn.execute("SELECT coalesce(max(seq), 0), 0 FROM outbox"
                                           " WHERE typeof(seq) = 'integer'").fetchone()):
            try:
                found = query()
                return int(found[0]), int(found[1])
            except (sqlite3.Error, ValueError, TypeError):
                continue
        return seq, boot
    finally:
        conn.close()


def _mark_of(conn: sqlite3.Connection) -> Tuple[int, int]:
    """``outbox.mark`` as ``(seq, boot)``; ValueError if it is damaged, (0, 0) if absent."""
    found = _meta_json(conn, _MARK_KEY)
    if found is None:
        return 0, 0
    seq, boot = found.get("seq"), found.get("boot")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (seq, boot)):
        raise ValueError(f"not two whole numbers >= 0: {found}")
    return int(seq), int(boot)  # type: ignore[arg-type]


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
        self.damage_found = 0
        self.measured_free: Optional[int] = None
        self.room_evicted: Optional[EvictionReport] = None  # by _make_room, this group
        self.reserve = Path(f"{path}-reserve")
        self._lock = threading.Lock()
        self._conn: Optional[sqlite3.Connection] = None
        self._synchronous = "FULL"  # what outbox_file.connect() set

    def submit(self, fn: Callable[[sqlite3.Connection], T], *,
               durable: bool = True, alarm_bytes: int = 0) -> "Future[T]":
        request = _Request(fn, durable=durable, alarm_bytes=alarm_bytes)
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
        self._keep_reserve()
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
            attempt, self.room_evicted = 0, None
            while attempt < _ROOM_ATTEMPTS and _disk_full(outcomes):
                attempt += 1
                self.state.grown, self.state.free_disk = 0, None
                if not self._make_room(conn, group, attempt):
                    break
                outcomes = self._transaction(conn, group)
            if self.room_evicted is not None:
                outcomes = self._with_room_evictions(group, outcomes)
            if attempt > 1:
                self._keep_reserve()
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
        if self.measured_free is not None and self.measured_free < self.limits.min_free_bytes:
            # under the floor, the WAL must not hold the space: the default auto-checkpoint
            # lets it grow to 4 MB, which filled a card with 2 MB free after ~80 alarms
            _checkpoint(conn)
        return outcomes

    def _make_room(self, conn: sqlite3.Connection, group: List[_Request], attempt: int) -> bool:
        """A write failed for lack of space (docs/spec.md §6): first give back the WAL's
        space (it can hold megabytes of old frames); if that was not enough and the group
        stores an alarm, the oldest rows give way (normal first, then critical), twice as
        many bytes each attempt. False when nothing more can be done."""
        if attempt > 1:
            needed = sum(r.alarm_bytes for r in group) << (attempt - 2)
            if needed <= 0:
                return False
            # the reserve file gives the deletes their WAL frames on a disk with 0 bytes free
            _unlink(self.reserve)
            if not self._evict_for_room(conn, needed):
                return False
        _checkpoint(conn)
        return True

    def _keep_reserve(self) -> None:
        """(Re)create the reserve file beside the outbox, if there is room for it."""
        if self.reserve.exists():
            return
        try:
            with open(self.reserve, "wb") as f:
                f.write(b"\0" * _RESERVE_BYTES)  # written, not sparse: the blocks are held
        except OSError:
            _unlink(self.reserve)

    def _with_room_evictions(self, group: List[_Request],
                             outcomes: List[Tuple[bool, Any]]) -> List[Tuple[bool, Any]]:
        """Tell the first alarm put what gave way for it (the loop reports evictions it
        learns of from a put's result)."""
        out = list(outcomes)
        for i, (request, (ok, value)) in enumerate(zip(group, outcomes)):
            if ok and request.alarm_bytes and isinstance(value, PutResult):
                out[i] = (True, replace(value, evicted=_merged(value.evicted, self.room_evicted)))
                break
        self.room_evicted = None
        return out

    def _evict_for_room(self, conn: sqlite3.Connection, needed: int) -> bool:
        before = self.state.copy()
        try:
            conn.execute("BEGIN IMMEDIATE")
            normal, critical = _sizes(conn, False), _sizes(conn, True)
            try:
                plan = plan_room(needed, oldest_normal=normal, oldest_critical=critical)
            finally:
                normal.close()
                critical.close()
            if not plan:
                _rollback(conn)
                return False
            evicted = EvictionReport.from_seqs(self._evict(conn, False, plan.normal),
                                               self._evict(conn, True, plan.critical))
            if evicted is not None:
                self._count_evictions(conn, evicted)
            conn.execute("COMMIT")
            self.room_evicted = _merged(evicted, self.room_evicted)
        except sqlite3.Error:  # not even a delete fits: the put fails, the caller keeps it
            _rollback(conn)
            self.state = before
            return False
        log.error("outbox %s: the disk is full; %s gave way to newer alarms", self.path,
                  evicted)
        return True

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
        """Check every row and the outbox's meta values, setting aside what is damaged
        (module docs), then load the totals and counts."""
        self.measured_free = int(self.free_disk())
        conn.execute("BEGIN IMMEDIATE")
        try:
            damaged = conn.execute(f"SELECT row_id, {_DAMAGE} AS damage FROM outbox"
                                   " WHERE damage IS NOT NULL").fetchall()
            if damaged:
                self.quarantine_rows(conn, [(int(i), str(why)) for i, why in damaged])
            pending = self._checked_meta(conn, _PENDING_KEY, _pending_of)
            evicted = self._checked_meta(conn, _EVICTED_KEY, _evicted_of)
            mark = self._checked_meta(conn, _MARK_KEY, _mark_of)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self.damage_found = conn.execute(
            "SELECT count(*) FROM quarantine WHERE reported = 0").fetchone()[0]
        self.state = _State(totals=_lane_totals(conn), pending=pending, evicted=evicted,
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

    def do_put(self, conn: sqlite3.Connection, rows: Tuple[OutboxRow, ...],
               settles: Optional[EvictionReport]) -> PutResult:
        state = self.state
        if state.free_disk is None:
            state.free_disk = self.measured_free = int(self.free_disk())
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
        self._raise_mark(conn, rows)
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
        if pending != state.pending:
            _set_meta_json(conn, _PENDING_KEY, None if pending is None else pending.as_data())
            state.pending = pending
        if evicted is not None:
            self._count_evictions(conn, evicted)
        return PutResult(tuple(saved), evicted)

    def _count_evictions(self, conn: sqlite3.Connection, evicted: EvictionReport) -> None:
        """Add ``evicted`` to the totals and to the pending (unreported) report."""
        state = self.state
        state.evicted = (state.evicted[0] + evicted.normal_count,
                         state.evicted[1] + evicted.critical_count)
        _set_meta_json(conn, _EVICTED_KEY, {"normal": state.evicted[0], "critical": state.evicted[1]})
        state.pending = evicted.merge(state.pending)
        _set_meta_json(conn, _PENDING_KEY, state.pending.as_data())

    def _raise_mark(self, conn: sqlite3.Connection, rows: Tuple[OutboxRow, ...]) -> None:
        """Keep ``outbox.mark`` at the highest (seq, boot) stored (the counters' floor)."""
        if not rows:
            return
        newest = max(rows, key=lambda r: r.seq)
        mark = (max(self.state.mark[0], newest.seq),
                max(self.state.mark[1], _boot_of(newest.payload)))
        if mark != self.state.mark:
            _set_meta_json(conn, _MARK_KEY, {"seq": mark[0], "boot": mark[1]})
            self.state.mark = mark

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


def _pending_of(conn: sqlite3.Connection) -> Optional[EvictionReport]:
    found = _meta_json(conn, _PENDING_KEY)
    return None if found is None else EvictionReport.from_data(found)


def _evicted_of(conn: sqlite3.Connection) -> Tuple[int, int]:
    found = _meta_json(conn, _EVICTED_KEY) or {"normal": 0, "critical": 0}
    counts = (found["normal"], found["critical"])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in counts):
        raise ValueError(f"not two counts >= 0: {found}")
    return counts


def _meta_json(conn: sqlite3.Connection, key: str) -> Optional[Dict[str, Any]]:
    found = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if found is None else dict(json.loads(found[0]))


def _set_meta_json(conn: sqlite3.Connection, key: str, value: Optional[Dict[str, Any]]) -> None:
    if value is None:
        conn.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))


#: tries after a write failed for lack of space: one checkpoint, then evictions of 1, 2,
#: 4... times the alarm batch's accounted bytes (SQLite needs more than that, in pages)
_ROOM_ATTEMPTS = 8


#: bytes held in ``outbox.sqlite3-reserve`` and let go when the disk is full (_make_room)
_RESERVE_BYTES = 256 * 1024


def _checkpoint(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # the WAL stays; the next write's outcome tells whether there was room


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass  # already gone, or never made


def _disk_full(outcomes: List[Tuple[bool, Any]]) -> bool:
    return any(not ok and isinstance(value, sqlite3.Error) and "full" in str(value).lower()
               for ok, value in outcomes)


def _merged(a: Optional[EvictionReport], b: Optional[EvictionReport]) -> Optional[EvictionReport]:
    return b if a is None else a.merge(b)


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

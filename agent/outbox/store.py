"""The durable outbox: every signed event sits here until the broker's PUBACK (docs/spec.md §6).

Theory of operation
-------------------
One SQLite file (``{state_dir}/outbox.sqlite3``) in WAL mode with ``synchronous=FULL``:
a commit has reached the disk when ``put`` returns, so a kill -9 or a power cut loses
nothing that was stored. :class:`Outbox` is the API; one owner thread
(``agent/outbox/owner.py``) does every SQLite call, committing what is queued in groups;
the SQL itself is ``agent/outbox/tables.py``, the values and the row check
``agent/outbox/rows.py``, room for alarms on a full disk ``agent/outbox/room.py``.
The plain methods wait on the owner's future; the ``submit_*`` ones hand it back.

Order out: the critical lane first, then ``seq`` order. ``ack`` deletes (after PUBACK).
Row ids are never reused (``AUTOINCREMENT``), so an ``ack`` for a row that was evicted
while in flight cannot delete a newer row. Eviction (what goes when the buffer is full,
and the free-disk floor that drops only normal rows) is decided by
``agent.outbox.policy`` inside the same transaction as the insert; each eviction is
counted, and what has not yet been reported is kept in the ``meta`` table so that a
restart does not lose the count.

Reporting evictions without recursion: ``put`` returns the :class:`EvictionReport` of
that put, and the outbox keeps the *pending* (unreported) total. The recorder
(``Recorder.report_evictions``) reports it at most once a minute, as a signed
``buffer.evicted`` event stored with ``settles``::

    pending = outbox.pending_evictions()
    if pending is not None:
        recorder.record([AgentEvent("buffer.evicted", now, pending.as_data())],
                        settles=pending)       # -> outbox.put([row], settles=pending)

``settles`` clears the reported counts in the same transaction. If that put itself evicts
(a full buffer), those evictions become the new pending total and go into the *next*
report, so one report never triggers another immediately, and a full buffer cannot churn
itself through reports faster than the recorder's interval.

A file that fails ``PRAGMA quick_check`` (or is not a database, or has a schema this code
did not make) is moved, with its ``-wal``/``-shm``, into the quarantine folder under a
timestamped name, and a fresh file takes its place (``agent/outbox/file.py``);
``Outbox.quarantined`` says so, and the loop reports it as a ``buffer.quarantined``
event. A locked or unreadable file is not corruption: that raises
:class:`~agent.errors.OutboxError` and nothing is moved. Damaged rows and ``meta``
values inside a sound file are set aside into the ``quarantine`` table
(``agent/outbox/tables.py``); ``unreported_damage()`` lists what the cloud has not been
told yet, ``settle_damage()`` marks it told. ``counter_floor()`` is what the counters
start above (docs/spec.md §4).
"""
from __future__ import annotations

import os
import shutil
from concurrent.futures import Future
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

from agent.outbox.file import QuarantineInfo
from agent.outbox.owner import Owner
from agent.outbox.policy import EvictionReport, OutboxLimits
from agent.outbox.rows import Damage, LaneStats, OutboxRow, OutboxStats, PutResult
from agent.outbox.tables import Tables, get_meta, set_meta

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["Outbox", "OutboxRow", "PutResult", "OutboxStats", "LaneStats", "QuarantineInfo",
           "OutboxLimits", "EvictionReport", "Damage"]


class Outbox:
    """The durable event buffer. Make one with :meth:`Outbox.open`; close it with :meth:`close`.

    Example::

        with Outbox.open(state_dir / "outbox.sqlite3", OutboxLimits()) as outbox:
            outbox.put([row])                   # returns once on disk
            batch = outbox.next_batch(20)       # critical first, then seq
            outbox.ack([r.row_id for r in batch])
    """

    def __init__(self, owner: Owner) -> None:  # use Outbox.open
        self._owner = owner
        self._tables = owner.tables
        self.path = owner.path
        self.limits = owner.tables.limits
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
        owner = Owner(Tables(p, limits, qdir, disk), group_max)
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
        return self._owner.submit(lambda conn: self._tables.put(conn, batch, settles),
                                  alarm_bytes=alarm_bytes)

    def ack(self, row_ids: Iterable[int], *, timeout: Optional[float] = None) -> int:
        """Delete delivered rows; returns how many were still there (evicted ones are not)."""
        return self.submit_ack(row_ids).result(timeout)

    def submit_ack(self, row_ids: Iterable[int]) -> "Future[int]":
        """Like :meth:`ack` without waiting (for paho's callback thread)."""
        ids = tuple(row_ids)
        return self._owner.submit(lambda conn: self._tables.ack(conn, ids), durable=False)

    def supersede(self, sensor: str, type: str, *, timeout: Optional[float] = None) -> int:
        """Delete stored ``type`` events of ``sensor`` not yet delivered (a newer one
        replaces them: heartbeats must not pile up while offline). Returns how many."""
        return self._owner.submit(
            lambda conn: self._tables.supersede(conn, sensor, type)).result(timeout)

    def set_meta(self, key: str, value: Optional[str], *, timeout: Optional[float] = None) -> None:
        """Store a key/value for other modules (None deletes). Keys ``outbox.*`` are ours."""
        self._owner.submit(lambda conn: set_meta(conn, key, value)).result(timeout)

    # -- reads ----------------------------------------------------------------------
    def next_batch(self, limit: int, exclude_row_ids: Iterable[int] = (), *,
                   timeout: Optional[float] = None) -> List[OutboxRow]:
        """Up to ``limit`` stored rows not in ``exclude_row_ids`` (in flight): critical
        lane first, then ``seq`` order."""
        excluded = frozenset(exclude_row_ids)
        return self._owner.submit(lambda conn: self._tables.next_batch(conn, limit, excluded),
                                  durable=False).result(timeout)

    def unreported_damage(self, limit: int = 100, *,
                          timeout: Optional[float] = None) -> List[Damage]:
        """Rows and meta values set aside that :meth:`settle_damage` has not settled."""
        return self._owner.submit(lambda conn: self._tables.unreported_damage(conn, limit),
                                  durable=False).result(timeout)

    def settle_damage(self, found: Iterable[Damage], *, timeout: Optional[float] = None) -> None:
        """Mark ``found`` as reported (call once its events are stored)."""
        ids = [d.id for d in found]
        self._owner.submit(lambda conn: self._tables.settle_damage(conn, ids)).result(timeout)

    @property
    def damage_found(self) -> int:
        """How many rows and meta values were set aside since open, plus the unreported
        ones found at open: when it changes, :meth:`unreported_damage` has news."""
        return self._tables.damage_found

    def counter_floor(self, *, timeout: Optional[float] = None) -> Tuple[int, int]:
        """``(seq, boot)``: the lowest ``seq`` never stored here and the highest ``boot``
        seen, over the mark, the rows, the quarantine table and the quarantined files that
        can still be read (``agent/outbox/tables.py``); ``(1, 0)`` when there is nothing."""
        return self._owner.submit(self._tables.counter_floor, durable=False).result(timeout)

    @property
    def disk_low(self) -> Optional[int]:
        """Free bytes on the outbox's file system if, when last measured (at open, then at
        every put), they were below ``limits.min_free_mb``; else None (``buffer.disk_low``)."""
        free = self._tables.measured_free
        return free if free is not None and free < self.limits.min_free_bytes else None

    def get_meta(self, key: str, *, timeout: Optional[float] = None) -> Optional[str]:
        """The value stored under ``key``, or None."""
        return self._owner.submit(lambda conn: get_meta(conn, key)).result(timeout)

    def pending_evictions(self, *, timeout: Optional[float] = None) -> Optional[EvictionReport]:
        """Evictions not yet reported with ``put(..., settles=...)``."""
        return self._owner.submit(lambda conn: self._tables.state.pending).result(timeout)

    def stats(self, *, timeout: Optional[float] = None) -> OutboxStats:
        """Depth, bytes and oldest event per lane, and eviction counts (for ``status``)."""
        return self._owner.submit(self._tables.stats).result(timeout)

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

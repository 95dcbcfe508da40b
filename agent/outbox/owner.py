"""The one thread that touches the outbox's SQLite file, committing requests in groups.

The loop and the publisher hand requests (a function of the connection) to
:meth:`Owner.submit` and get a ``concurrent.futures.Future`` back. The owner takes
everything queued (up to ``group_max`` requests) into one transaction, each request in
a savepoint of its own (one failing request does not sink the others), and resolves the
futures only after the COMMIT: a burst of events costs one fsync, not one per event
("group commit"), and nobody learns of a row — not even ``next_batch`` — before it is
durable.

A group holding only acks and reads commits with ``synchronous=NORMAL`` (in WAL mode that
skips the fsync, never the integrity); the next group that stores a row
(``synchronous=FULL``) makes them durable with it. A kill -9 loses nothing (the OS has
the write); a power cut can at worst bring back rows that were already delivered, which
are then sent again — a duplicate with the same ``jti`` that the cloud drops
(docs/spec.md §4), never a lost event. Under the free-disk floor each commit is followed
by a WAL checkpoint, and a write that fails for lack of space goes to
``agent/outbox/room.py``.
"""
from __future__ import annotations

import queue
import sqlite3
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple, TypeVar

from agent.errors import OutboxError
from agent.outbox.file import QuarantineInfo, checkpoint_and_close, open_checked
from agent.outbox.room import Outcome, Room
from agent.outbox.tables import Tables, checkpoint, rollback

T = TypeVar("T")


@dataclass
class _Request:
    fn: Callable[[sqlite3.Connection], Any]
    future: "Future[Any]" = field(default_factory=Future)
    #: False for acks and reads: their group may commit without an fsync (module docs)
    durable: bool = True
    #: accounted bytes of a put holding a critical row: what a full disk must make room for
    alarm_bytes: int = 0


class Owner(threading.Thread):
    """The one thread that touches SQLite (module docs); ``opened`` resolves once the
    file is open and checked."""

    def __init__(self, tables: Tables, group_max: int) -> None:
        super().__init__(name=f"outbox:{tables.path.name}", daemon=True)
        self.tables = tables
        self.path = tables.path
        self.room = Room(tables, Path(f"{tables.path}-reserve"))
        self.group_max = max(1, group_max)
        self.requests: "queue.Queue[Optional[_Request]]" = queue.Queue()
        self.opened: "Future[None]" = Future()
        self.quarantined: Optional[QuarantineInfo] = None
        self.closed = False
        self.commits = 0
        self._lock = threading.Lock()
        self._synchronous = "FULL"  # what agent.outbox.file.connect() set

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
            conn, self.quarantined = open_checked(self.path, self.tables.quarantine_dir)
            self.tables.load_state(conn)
        except BaseException as exc:  # noqa: B902 - handed to the caller of open()
            with self._lock:
                self.closed = True
            self.opened.set_exception(exc)
            return
        self.room.keep_reserve()
        self.opened.set_result(None)
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
        tables = self.tables
        start = tables.state.copy()
        try:
            outcomes = self.room.write(conn, [r.alarm_bytes for r in group],
                                       lambda: self._transaction(conn, group))
        except BaseException as exc:  # a bug or a broken connection: nobody may hang
            rollback(conn)
            tables.state = start
            outcomes = [(False, exc)] * len(group)
        tables.state.grown, tables.state.free_disk = 0, None
        for request, (ok, value) in zip(group, outcomes):
            if ok:
                request.future.set_result(value)
            else:
                request.future.set_exception(_as_outbox_error(value, self.path))

    def _transaction(self, conn: sqlite3.Connection, group: List[_Request]) -> List[Outcome]:
        tables = self.tables
        start = tables.state.copy()
        synchronous = "FULL" if any(r.durable for r in group) else "NORMAL"
        if synchronous != self._synchronous:  # outside a transaction, as SQLite requires
            conn.execute(f"PRAGMA synchronous={synchronous}")
            self._synchronous = synchronous
        conn.execute("BEGIN IMMEDIATE")
        outcomes: List[Outcome] = []
        for request in group:
            before = tables.state.copy()
            conn.execute("SAVEPOINT request")
            try:
                outcomes.append((True, request.fn(conn)))
                conn.execute("RELEASE request")
            except Exception as exc:  # one bad request must not sink the others
                outcomes.append((False, exc))
                tables.state = before
                try:
                    conn.execute("ROLLBACK TO request")
                    conn.execute("RELEASE request")
                except sqlite3.Error:  # SQLite rolled the whole transaction back (disk full)
                    tables.state = start
                    rollback(conn)
                    return [(False, exc)] * len(group)
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            tables.state = start
            rollback(conn)
            return [(False, exc)] * len(group)
        self.commits += 1
        free = tables.measured_free
        if free is not None and free < tables.limits.min_free_bytes:
            # under the floor, the WAL must not hold the space: the default auto-checkpoint
            # lets it grow to 4 MB, which filled a card with 2 MB free after ~80 alarms
            checkpoint(conn)
        return outcomes

    def _fail_leftovers(self) -> None:
        while True:
            try:
                request = self.requests.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                request.future.set_exception(OutboxError(f"the outbox {self.path} was closed"))


def _as_outbox_error(exc: BaseException, path: Path) -> BaseException:
    if not isinstance(exc, sqlite3.Error):
        return exc
    text = str(exc)
    hint = ("free some space on that file system, or lower buffer.max_mb" if "full" in text
            else "check the disk and the permissions of the state directory")
    error = OutboxError(f"the outbox {path} could not be written: {text}", hint=hint)
    error.__cause__ = exc
    return error

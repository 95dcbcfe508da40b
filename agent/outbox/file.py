"""The outbox's SQLite file: open it with the agreed PRAGMAs, check it, quarantine it.

Used only by the outbox's owner thread (``agent/outbox/owner.py``). A file that fails
``PRAGMA quick_check``, is not a database, or has a schema this code did not make is moved,
with its ``-wal``/``-shm``, into the quarantine folder as ``{name}.{UTC time}`` and a fresh
file takes its place (docs/spec.md §6: go on instead of crash-looping). A file that cannot be
opened for another reason (locked, permissions, a folder in its place) is *not* corrupt:
that raises :class:`~agent.errors.OutboxError` and nothing is moved.
"""
from __future__ import annotations

import datetime
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from agent.errors import OutboxError

SCHEMA_VERSION = 1
APPLICATION_ID = 0x48434147  # "HCAG": marks the file as ours
_COLUMNS = ("row_id", "seq", "critical", "topic", "payload", "jti", "sensor", "type", "created",
            "size")
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    row_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    seq      INTEGER NOT NULL UNIQUE,
    critical INTEGER NOT NULL,
    topic    TEXT NOT NULL,
    payload  BLOB NOT NULL,
    jti      TEXT NOT NULL,
    sensor   TEXT NOT NULL,
    type     TEXT NOT NULL,
    created  REAL NOT NULL,
    size     INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (critical DESC, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- rows and meta values that could not be used, kept as found (docs/spec.md §6): no
-- column types here, since what lands in it is whatever the damage left
CREATE TABLE IF NOT EXISTS quarantine (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    row_id   INTEGER,
    meta_key TEXT,
    reason   TEXT NOT NULL,
    reported INTEGER NOT NULL DEFAULT 0,
    seq, critical, topic, payload, jti, sensor, type, created, size
);
"""
_CORRUPTION_WORDS = ("not a database", "malformed", "corrupt")


@dataclass(frozen=True)
class QuarantineInfo:
    """A corrupt outbox file that was moved aside at start (for ``buffer.quarantined``)."""

    path: str
    moved_to: Tuple[str, ...]
    reason: str
    at: float

    def as_data(self) -> Dict[str, Any]:
        return {"path": self.path, "moved_to": list(self.moved_to), "reason": self.reason}


def open_checked(path: Path, quarantine_dir: Path) -> Tuple[sqlite3.Connection, Optional[QuarantineInfo]]:
    """A connection to a sound outbox file at ``path`` (made fresh if need be), and what was
    quarantined on the way, if anything."""
    info: Optional[QuarantineInfo] = None
    if path.exists():
        problem = _empty(path) or _problem(path)
        if problem is not None:
            info = _quarantine(path, quarantine_dir, problem)
    elif _sidecars(path):  # a WAL without its database must not be replayed into a new one
        info = _quarantine(path, quarantine_dir, "a -wal/-shm file without its database")
    try:
        conn = connect(path)
        conn.executescript(SCHEMA)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    except sqlite3.Error as exc:
        raise OutboxError(f"cannot create the outbox {path}: {exc}",
                          hint="check that the state directory exists, is writable by the "
                               "agent's user, and that its file system has free space") from exc
    return conn, info


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=5.0)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(f"the outbox {path} cannot use WAL mode (got {mode!r})",
                              hint="put state_dir on a local file system (not NFS or tmpfs over FUSE)")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA journal_size_limit=4194304")
    except BaseException:
        conn.close()
        raise
    return conn


def _empty(path: Path) -> Optional[str]:
    """A 0-byte file with no WAL to replay held events once and holds none now: SQLite
    would take it for a new database and the loss would go unreported (docs/spec.md §6).
    (The agent checkpoints its WAL into the file at every close, so a sound outbox is
    never empty on disk without a WAL beside it.)"""
    wal = Path(f"{path}-wal")
    if path.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0):
        return "the file is empty (0 bytes): whatever it held is gone"
    return None


def _problem(path: Path) -> Optional[str]:
    """Why the file at ``path`` is corrupt, or None if it is usable.

    :raises OutboxError: the file cannot be checked for a reason that is not corruption
        (locked by another process, permissions): moving it aside would be wrong.
    """
    try:
        conn = connect(path)
    except sqlite3.DatabaseError as exc:
        return _corruption_or_raise(exc, path)
    try:
        result = [str(r[0]) for r in conn.execute("PRAGMA quick_check(20)")]
        if result != ["ok"]:
            return "quick_check: " + "; ".join(result)[:500]
        return _schema_problem(conn)
    except sqlite3.DatabaseError as exc:
        return _corruption_or_raise(exc, path)
    finally:
        conn.close()


def _schema_problem(conn: sqlite3.Connection) -> Optional[str]:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    app_id = conn.execute("PRAGMA application_id").fetchone()[0]
    if not tables - {"sqlite_sequence"}:
        return None  # empty (new) database
    if app_id != APPLICATION_ID or "outbox" not in tables or "meta" not in tables:
        return f"not an outbox file (tables: {', '.join(sorted(tables))})"
    columns = tuple(r[1] for r in conn.execute("PRAGMA table_info(outbox)"))
    if columns != _COLUMNS:
        return f"unexpected outbox columns {columns}"
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version != SCHEMA_VERSION:
        return f"schema version {version}, this agent knows {SCHEMA_VERSION}"
    return None


def _corruption_or_raise(exc: sqlite3.DatabaseError, path: Path) -> str:
    text = str(exc)
    if any(word in text.lower() for word in _CORRUPTION_WORDS):
        return text
    raise OutboxError(f"cannot open the outbox {path}: {text}",
                      hint="is another homecare-agent running with the same state_dir? "
                           "Otherwise check the file's owner and permissions") from exc


def _sidecars(path: Path) -> List[Path]:
    return [p for p in (Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]


def _quarantine(path: Path, quarantine_dir: Path, reason: str) -> QuarantineInfo:
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    try:
        quarantine_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        base = quarantine_dir / f"{path.name}.{stamp}"
        n = 0
        while any(Path(f"{base}{s}").exists() for s in ("", "-wal", "-shm")):
            n += 1
            base = quarantine_dir / f"{path.name}.{stamp}.{n}"
        moved = []
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{path}{suffix}")
            if source.exists():
                target = Path(f"{base}{suffix}")
                shutil.move(str(source), str(target))
                moved.append(str(target))
        for folder in {path.parent, quarantine_dir}:
            _fsync_dir(folder)
    except OSError as exc:
        raise OutboxError(f"the outbox {path} is corrupt ({reason}) and could not be moved to "
                          f"{quarantine_dir}: {exc}",
                          hint="move the file away by hand and restart the agent") from exc
    return QuarantineInfo(str(path), tuple(moved), reason, now.timestamp())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def checkpoint_and_close(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error:
        pass  # the WAL stays; SQLite replays it at the next open
    finally:
        conn.close()



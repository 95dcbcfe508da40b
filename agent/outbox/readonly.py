"""The outbox file read from outside the agent, never written (``homecare-agent status``).

The running agent owns the outbox through :class:`~agent.outbox.store.Outbox` and its one
thread; a second process must not open it that way. :func:`read_only_summary` opens the
file read-only (``mode=ro``: it changes no row and holds no lock past the read; SQLite
may make the WAL's side files), so it works whether or not the agent runs, and neither
disturbs it nor repairs anything.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

from agent.errors import OutboxError
from agent.outbox.tables import EVICTED_KEY

#: the outbox's file name in the state folder
OUTBOX_FILE = "outbox.sqlite3"
#: what to do when the state folder is the service user's (mode 0700)
UNREADABLE_HINT = ("run `homecare-agent status` as the service's user or with sudo "
                   "(e.g. `sudo homecare-agent status --config ...`)")


@dataclass(frozen=True)
class LaneSummary:
    """One lane of the outbox: rows waiting, and the ``created`` time of the oldest."""

    rows: int
    oldest: Optional[float]

    def __post_init__(self) -> None:
        if self.rows < 0:
            raise ValueError(f"a lane cannot hold {self.rows} rows")


@dataclass(frozen=True)
class OutboxSummary:
    critical: LaneSummary
    normal: LaneSummary
    #: evictions so far per lane ("normal", "critical"); "?" where the record is damaged
    evicted: Mapping[str, Any]


def read_only_summary(path: Path) -> Optional[OutboxSummary]:
    """Depth and oldest event per lane, and eviction totals; None if there is no outbox
    yet. A file that cannot be read is an :class:`OutboxError` saying what to do."""
    try:
        if not path.exists():
            return None
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            lanes = {bool(c): LaneSummary(n, oldest) for c, n, oldest in conn.execute(
                "SELECT critical, count(*), min(created) FROM outbox GROUP BY critical")}
            found = conn.execute("SELECT value FROM meta WHERE key = ?",
                                 (EVICTED_KEY,)).fetchone()
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        raise OutboxError(f"cannot read the outbox {path} ({exc})", hint=UNREADABLE_HINT) from exc
    try:
        evicted = json.loads(found[0]) if found else {"normal": 0, "critical": 0}
    except ValueError:  # damaged bookkeeping: the agent resets it at its next start
        evicted = {"normal": "?", "critical": "?"}
    empty = LaneSummary(0, None)
    return OutboxSummary(lanes.get(True, empty), lanes.get(False, empty), evicted)

"""Where signed events wait when the state directory cannot be written (docs/spec.md §6).

Theory of operation
-------------------
Storage failure is a degraded mode, not an exit: an event that cannot be committed to
the outbox (read-only card, I/O error, full disk) is kept here, already signed, and the
publisher sends it from here. Each entry is the token exactly as it was signed; nothing
here ever signs again, so a retry never costs a ``seq``.

Memory is bounded (``max_events``, ``max_bytes``). When a new entry does not fit, the
oldest ``normal`` entry goes first; a new normal entry never displaces a critical one
(it is itself dropped when only critical ones are left); a new critical entry with no
normal one left makes the oldest critical give way (the newest alarm is the one
somebody can still act on). What was pushed out (or not let in) is returned to the
caller, who counts it.

Out: critical first, then ``seq`` order, as the outbox (``next_batch``). Entries are
:class:`~agent.outbox.rows.OutboxRow` values whose ``row_id`` is a negative key, so that
it never meets an outbox row id (those are positive): the publisher and local feedback
deal in one kind of id for both.

Sans-IO: no clocks, threads or files; the caller holds any lock.
"""
from __future__ import annotations

from dataclasses import replace
from typing import AbstractSet, Dict, List, Optional, Sequence, Tuple

from agent.outbox.rows import OutboxRow

#: default bounds of the memory buffer (one place for them; the Pi Zero 2 W has 512 MB)
MAX_EVENTS = 1000
MAX_BYTES = 2 * 1024 * 1024


def held_bytes(row: OutboxRow) -> int:
    """What a held row counts against ``max_bytes``: its token and topic."""
    return len(row.payload) + len(row.topic)


class MemoryBuffer:
    """Bounded, critical-first holding place for signed events (module docstring)."""

    def __init__(self, *, max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES) -> None:
        if max_events < 1 or max_bytes < 1:
            raise ValueError(f"memory buffer bounds must be positive, got max_events="
                             f"{max_events} max_bytes={max_bytes}")
        self.max_events, self.max_bytes = max_events, max_bytes
        self._rows: Dict[int, OutboxRow] = {}   # insertion order = arrival order
        self._bytes = 0
        self._next_key = -1
        #: entries pushed out since start, by lane
        self.evicted_normal = 0
        self.evicted_critical = 0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def size(self) -> int:
        return self._bytes

    def add(self, signed: OutboxRow) -> Tuple[int, List[OutboxRow]]:
        """Keep one signed event; returns its (negative) key and what was pushed out,
        which includes the new row itself when it was not let in."""
        key = self._next_key
        row = replace(signed, row_id=key)
        self._next_key -= 1
        critical = row.critical
        evicted: List[OutboxRow] = []
        while self._rows and (len(self._rows) + 1 > self.max_events
                              or self._bytes + held_bytes(row) > self.max_bytes):
            victim = self._oldest(critical=False)
            if victim is None and not critical:
                self.evicted_normal += 1      # a normal event never pushes out an alarm
                return key, evicted + [row]
            victim = victim or self._oldest(critical=True)
            assert victim is not None
            self._drop(memory_key(victim))
            evicted.append(victim)
            if victim.critical:
                self.evicted_critical += 1
            else:
                self.evicted_normal += 1
        self._rows[key] = row
        self._bytes += held_bytes(row)
        return key, evicted

    def next_batch(self, limit: int, exclude: AbstractSet[int] = frozenset()) -> List[OutboxRow]:
        """Up to ``limit`` entries not in ``exclude``: critical first, then ``seq``."""
        rows = sorted((r for k, r in self._rows.items() if k not in exclude),
                      key=lambda r: (not r.critical, r.seq))
        return rows[:max(0, limit)]

    def ack(self, row_ids: Sequence[int]) -> int:
        """Forget delivered entries; returns how many were still here."""
        return sum(1 for key in row_ids if self._drop(key) is not None)

    def supersede(self, sensor: str, type: str) -> int:
        """Forget held ``type`` events of ``sensor`` (a newer one replaces them)."""
        keys = [k for k, r in self._rows.items() if r.sensor == sensor and r.type == type]
        return self.ack(keys)

    def rows(self) -> List[OutboxRow]:
        """Everything held, in arrival order (to move into the outbox once it works)."""
        return list(self._rows.values())

    def _oldest(self, *, critical: bool) -> Optional[OutboxRow]:
        return next((r for r in self._rows.values() if r.critical == critical), None)

    def _drop(self, key: int) -> Optional[OutboxRow]:
        row = self._rows.pop(key, None)
        if row is not None:
            self._bytes -= held_bytes(row)
        return row


def memory_key(row: OutboxRow) -> int:
    """The (negative) key of a row this buffer gave out."""
    if row.row_id is None or row.row_id >= 0:
        raise ValueError(f"row seq {row.seq} was not given out by a MemoryBuffer (row_id "
                         f"{row.row_id}): a bug in the caller")
    return row.row_id

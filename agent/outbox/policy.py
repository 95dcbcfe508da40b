"""What the outbox keeps and what it gives up when it is full (docs/spec.md §6), without I/O.

Theory of operation
-------------------
The outbox (``agent/outbox/tables.py``) asks this module one question per ``put``: given what
is stored, what arrives, and how much disk is free, how many of the oldest rows of each
lane must go? The answer is an :class:`EvictionPlan`; the shell deletes exactly that many
rows, oldest ``seq`` first, and turns their ``seq`` numbers into an
:class:`EvictionReport` that becomes a ``buffer.evicted`` event.

Three limits (config ``buffer:``), all checked *after* the incoming batch is added:

``max_events`` / ``max_mb``
    While either is exceeded, the oldest ``normal`` row goes (an incoming normal row
    counts too: when nothing older is left, it is the one dropped). ``critical`` rows are
    never evicted for these two limits: a buffer holding only critical rows may exceed them.
``min_free_mb`` (free-disk floor)
    The buffer may grow by at most ``free_disk - floor`` bytes beyond what it held before
    the batch (deleted rows free SQLite pages that new rows reuse, so shrinking the buffer
    gives the room back). Over that, the oldest ``normal`` rows go. The floor stops only
    normal events (docs/spec.md §6, version 2): a critical row is never evicted while a
    write can still succeed, since the floor is a margin and a card with 2 MB free still
    holds thousands of alarms.

When a write has actually failed for lack of space, ``agent/outbox/room.py`` asks :func:`plan_room`
how many of the oldest rows must go to free the bytes the batch needs: normal rows
first, then the oldest critical rows give way to the newest (the batch being stored).

Byte sizes are the outbox's *accounted* sizes (see :func:`row_size`), not file sizes.
"Oldest" means lowest ``seq``; ``seq`` is strictly increasing (docs/spec.md §4), so it is also
creation order.

This module imports nothing that does I/O, keeps no clock and starts no thread.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, Optional, Sequence

MB = 1024 * 1024

#: bytes added to every row's own fields to stand for SQLite's per-row and index costs
ROW_OVERHEAD = 64


def row_size(*, payload: int, text_fields: int) -> int:
    """Accounted bytes of one stored row: its JWT, its text columns and a fixed overhead.

    ``payload`` and ``text_fields`` are lengths in bytes. ``max_mb`` limits the sum of
    these, which is close to (a little under) the space the rows take in the file.
    """
    if payload < 0 or text_fields < 0:
        raise ValueError(f"row sizes cannot be negative (payload={payload}, text={text_fields})")
    return payload + text_fields + ROW_OVERHEAD


@dataclass(frozen=True)
class OutboxLimits:
    """The ``buffer:`` section of the config (docs/spec.md §10).

    :param max_events: most events kept before the oldest normal ones go (default 100000).
    :param max_mb: most megabytes (MiB) of events before the oldest normal ones go
        (default 64).
    :param min_free_mb: free-disk floor in MiB (default 50): below it normal events are
        dropped, oldest first, and ``buffer.disk_low`` is reported; critical events are
        kept until a write actually fails for lack of space.
    """

    max_events: int = 100_000
    max_mb: float = 64
    min_free_mb: float = 50

    def __post_init__(self) -> None:
        if isinstance(self.max_events, bool) or not isinstance(self.max_events, int) \
                or self.max_events < 1:
            raise ValueError(f"buffer.max_events must be a whole number >= 1, got {self.max_events!r}")
        if not self.max_mb > 0:
            raise ValueError(f"buffer.max_mb must be more than 0, got {self.max_mb!r}")
        if not self.min_free_mb >= 0:
            raise ValueError(f"buffer.min_free_mb must be 0 or more, got {self.min_free_mb!r}")

    @property
    def max_bytes(self) -> int:
        return int(self.max_mb * MB)

    @property
    def min_free_bytes(self) -> int:
        return int(self.min_free_mb * MB)


@dataclass(frozen=True)
class Totals:
    """Row count and accounted bytes of each lane (stored rows, or an incoming batch)."""

    normal_rows: int = 0
    normal_bytes: int = 0
    critical_rows: int = 0
    critical_bytes: int = 0

    def __post_init__(self) -> None:
        for name in ("normal_rows", "normal_bytes", "critical_rows", "critical_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"Totals.{name} cannot be negative, got {getattr(self, name)}")

    @property
    def rows(self) -> int:
        return self.normal_rows + self.critical_rows

    @property
    def bytes(self) -> int:
        return self.normal_bytes + self.critical_bytes

    def __add__(self, other: "Totals") -> "Totals":
        return Totals(self.normal_rows + other.normal_rows, self.normal_bytes + other.normal_bytes,
                      self.critical_rows + other.critical_rows,
                      self.critical_bytes + other.critical_bytes)

    @classmethod
    def of(cls, rows: Iterable[tuple[bool, int]]) -> "Totals":
        """Totals of ``(critical, size)`` pairs."""
        nr = nb = cr = cb = 0
        for critical, size in rows:
            if critical:
                cr, cb = cr + 1, cb + size
            else:
                nr, nb = nr + 1, nb + size
        return cls(nr, nb, cr, cb)


@dataclass(frozen=True)
class EvictionPlan:
    """How many of the oldest rows of each lane to delete (incoming rows included)."""

    normal: int = 0
    critical: int = 0

    def __post_init__(self) -> None:
        if self.normal < 0 or self.critical < 0:
            raise ValueError(f"an eviction plan cannot be negative: {self}")

    def __bool__(self) -> bool:
        return self.normal > 0 or self.critical > 0


@dataclass(frozen=True)
class EvictionReport:
    """Events given up, for the ``buffer.evicted`` event (docs/spec.md §6).

    ``first_seq``/``last_seq`` are the lowest and highest ``seq`` evicted, over both
    lanes: every evicted ``seq`` lies in that range, but not every ``seq`` in the range was
    evicted (some were delivered, or are still stored).
    """

    normal_count: int
    critical_count: int
    first_seq: int
    last_seq: int

    def __post_init__(self) -> None:
        if self.normal_count < 0 or self.critical_count < 0 or self.count < 1:
            raise ValueError(f"an eviction report needs at least one evicted event: {self}")
        if self.first_seq > self.last_seq:
            raise ValueError(f"first_seq {self.first_seq} is after last_seq {self.last_seq}")

    @property
    def count(self) -> int:
        return self.normal_count + self.critical_count

    @classmethod
    def from_seqs(cls, normal: Sequence[int], critical: Sequence[int]) -> Optional["EvictionReport"]:
        """The report for these evicted ``seq`` numbers, or None when there are none."""
        every = list(normal) + list(critical)
        if not every:
            return None
        return cls(len(normal), len(critical), min(every), max(every))

    def merge(self, other: Optional["EvictionReport"]) -> "EvictionReport":
        """One report covering both (counts added, seq range widened)."""
        if other is None:
            return self
        return EvictionReport(self.normal_count + other.normal_count,
                              self.critical_count + other.critical_count,
                              min(self.first_seq, other.first_seq),
                              max(self.last_seq, other.last_seq))

    def minus(self, settled: "EvictionReport") -> Optional["EvictionReport"]:
        """What is left to report once ``settled`` has been reported (None: nothing).

        Counts are subtracted; the seq range is kept as is (it may then cover more than
        what is left, never less).
        """
        normal = max(0, self.normal_count - settled.normal_count)
        critical = max(0, self.critical_count - settled.critical_count)
        if normal + critical == 0:
            return None
        return EvictionReport(normal, critical, self.first_seq, self.last_seq)

    def as_data(self) -> Dict[str, Any]:
        """The ``data`` object of the ``buffer.evicted`` event."""
        return {"count": self.count, "normal": self.normal_count,
                "critical": self.critical_count,
                "first_seq": self.first_seq, "last_seq": self.last_seq}

    @classmethod
    def from_data(cls, data: Dict[str, Any]) -> "EvictionReport":
        return cls(int(data["normal"]), int(data["critical"]),
                   int(data["first_seq"]), int(data["last_seq"]))


def plan_eviction(stored: Totals, incoming: Totals, *, free_disk_bytes: int,
                  limits: OutboxLimits, oldest_normal: Iterable[int],
                  oldest_critical: Iterable[int]) -> EvictionPlan:
    """Decide how many of the oldest rows of each lane go so ``incoming`` fits.

    :param stored: what the buffer held before the batch.
    :param incoming: the batch being added.
    :param free_disk_bytes: free bytes on the buffer's file system, measured before the
        batch was written.
    :param oldest_normal: accounted sizes of the normal rows, oldest first, *including* the
        incoming normal rows after the stored ones (the order the shell will delete in).
        Read lazily and only as far as needed, so the shell may pass a database cursor.
    :param oldest_critical: the same for the critical lane.
    """
    after = stored + incoming
    disk_budget = stored.bytes + max(0, free_disk_bytes - limits.min_free_bytes)
    rows, size = after.rows, after.bytes

    def over_normal_limits() -> bool:
        return rows > limits.max_events or size > limits.max_bytes or size > disk_budget

    evict_normal = 0
    normal_sizes: Iterator[int] = iter(oldest_normal)
    while evict_normal < after.normal_rows and over_normal_limits():
        item = next(normal_sizes, None)
        if item is None:
            break
        evict_normal, rows, size = evict_normal + 1, rows - 1, size - item

    # no critical row goes here, whatever the limits say: see plan_room
    return EvictionPlan(evict_normal, 0)


def plan_room(needed_bytes: int, *, oldest_normal: Iterable[int],
              oldest_critical: Iterable[int]) -> EvictionPlan:
    """After a write failed for lack of space: how many of the oldest stored rows go so
    that ``needed_bytes`` (accounted) are freed — normal rows first, then critical ones.

    ``oldest_normal`` / ``oldest_critical`` are the stored rows' accounted sizes, oldest
    first, read lazily. An empty plan means nothing is left to give: the write fails.
    """
    freed, counts = 0, [0, 0]
    for lane, sizes in enumerate((oldest_normal, oldest_critical)):
        for size in sizes:
            if freed >= needed_bytes:
                break
            freed, counts[lane] = freed + size, counts[lane] + 1
    return EvictionPlan(counts[0], counts[1])

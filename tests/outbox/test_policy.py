"""The outbox's eviction rules (docs/spec.md §6) on plain numbers."""
from __future__ import annotations

from typing import List, Optional, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.outbox.policy import (MB, ROW_OVERHEAD, EvictionPlan, EvictionReport, OutboxLimits,
                                 Totals, plan_eviction, plan_room, row_size)

BIG_DISK = 10_000 * MB

# A row is (critical, size). Each case: stored rows and incoming rows, oldest first;
# limits; free disk; expected (normal evicted, critical evicted).
Row = Tuple[bool, int]
N = False
C = True


def rows(kind: bool, n: int, size: int = 100) -> List[Row]:
    return [(kind, size)] * n


CASES = [
    # id, stored, incoming, limits, free, expected
    ("empty, one in", [], rows(N, 1), OutboxLimits(max_events=5), BIG_DISK, (0, 0)),
    ("exactly at max_events", rows(N, 4), rows(N, 1), OutboxLimits(max_events=5), BIG_DISK, (0, 0)),
    ("one over max_events", rows(N, 5), rows(N, 1), OutboxLimits(max_events=5), BIG_DISK, (1, 0)),
    ("burst over max_events", rows(N, 5), rows(N, 4), OutboxLimits(max_events=5), BIG_DISK, (4, 0)),
    ("burst larger than the limit evicts incoming too", rows(N, 2), rows(N, 8),
     OutboxLimits(max_events=5), BIG_DISK, (5, 0)),
    ("critical in, normal out", rows(N, 5), rows(C, 1), OutboxLimits(max_events=5), BIG_DISK, (1, 0)),
    ("critical never evicted for max_events", rows(C, 5), rows(C, 3),
     OutboxLimits(max_events=5), BIG_DISK, (0, 0)),
    ("normal in, only criticals stored: the new normal goes", rows(C, 5), rows(N, 1),
     OutboxLimits(max_events=5), BIG_DISK, (1, 0)),
    ("mixed: all normals go, criticals exceed", rows(N, 3) + rows(C, 3), rows(C, 3),
     OutboxLimits(max_events=5), BIG_DISK, (3, 0)),
    ("mixed: only as many normals as needed", rows(N, 3) + rows(C, 2), rows(C, 1),
     OutboxLimits(max_events=5), BIG_DISK, (1, 0)),
    ("at max_mb", rows(N, 9, MB // 10), rows(N, 1, MB // 10), OutboxLimits(max_mb=1), BIG_DISK, (0, 0)),
    ("over max_mb by one byte", rows(N, 9, MB // 10), rows(N, 1, MB // 10 + 7),
     OutboxLimits(max_mb=1), BIG_DISK, (1, 0)),
    ("max_mb frees by bytes: one big old row is enough", [(N, MB // 2)] + rows(N, 4, MB // 10),
     rows(N, 2, MB // 10), OutboxLimits(max_mb=1), BIG_DISK, (1, 0)),
    ("max_mb frees by bytes: many small old rows", rows(N, 10, MB // 100) + [(N, MB // 2)],
     [(N, MB // 2)], OutboxLimits(max_mb=1), BIG_DISK, (10, 0)),
    ("critical never evicted for max_mb", rows(C, 10, MB // 10), rows(C, 5, MB // 10),
     OutboxLimits(max_mb=1), BIG_DISK, (0, 0)),
    ("both limits: the stricter wins", rows(N, 4, MB // 4), rows(N, 1, MB // 4),
     OutboxLimits(max_events=100, max_mb=1), BIG_DISK, (1, 0)),
    # free disk floor: budget = stored bytes + (free - floor); version 2: it stops only
    # normal events, a critical one is never evicted for it (plan_room handles a full disk)
    ("disk floor: enough headroom", rows(C, 3, 1000), rows(C, 1, 1000),
     OutboxLimits(min_free_mb=1), MB + 1000, (0, 0)),
    ("disk floor: normals go first", rows(N, 2, 1000) + rows(C, 3, 1000), rows(C, 1, 1000),
     OutboxLimits(min_free_mb=1), MB + 999, (1, 0)),
    ("disk floor: no critical gives way to a newer one", rows(C, 3, 1000), rows(C, 1, 1000),
     OutboxLimits(min_free_mb=1), MB, (0, 0)),
    ("disk floor: already below the floor, criticals still kept", rows(C, 3, 1000),
     rows(C, 2, 1000), OutboxLimits(min_free_mb=1), MB // 2, (0, 0)),
    ("disk floor: a normal arriving does not push out criticals", rows(C, 3, 1000), rows(N, 1, 1000),
     OutboxLimits(min_free_mb=1), 0, (1, 0)),
    ("disk floor: the newest critical is always kept", [], rows(C, 1, 5000),
     OutboxLimits(min_free_mb=1), MB, (0, 0)),
    ("disk floor: a burst of criticals pushes out nothing", rows(C, 2, 1000),
     rows(C, 3, 1000), OutboxLimits(min_free_mb=1), MB - 10**6, (0, 0)),
    ("disk floor: a burst alone is kept whole", [], rows(C, 3, 1000),
     OutboxLimits(min_free_mb=1), MB, (0, 0)),
    ("disk floor: a normal in a critical burst goes", [], rows(C, 2, 1000) + rows(N, 1, 1000),
     OutboxLimits(min_free_mb=1), MB, (1, 0)),
    ("disk floor and max_events together", rows(N, 5) + rows(C, 5), rows(C, 2),
     OutboxLimits(max_events=10, min_free_mb=1), MB, (2, 0)),
    ("disk floor after every normal is gone", rows(N, 1, 100) + rows(C, 5, 100), rows(C, 2, 100),
     OutboxLimits(max_events=100, min_free_mb=1), MB, (1, 0)),
    ("floor zero, disk full", rows(N, 2), rows(N, 1), OutboxLimits(min_free_mb=0), 0, (1, 0)),
]


@pytest.mark.parametrize("name,stored,incoming,limits,free,expected", CASES, ids=[c[0] for c in CASES])
def test_plan(name: str, stored: List[Row], incoming: List[Row], limits: OutboxLimits, free: int,
              expected: Tuple[int, int]) -> None:
    every = stored + incoming
    plan = plan_eviction(Totals.of(stored), Totals.of(incoming), free_disk_bytes=free, limits=limits,
                         oldest_normal=[s for c, s in every if not c],
                         oldest_critical=[s for c, s in every if c])
    assert (plan.normal, plan.critical) == expected
    check_invariants(stored, incoming, limits, free, plan)


def check_invariants(stored: List[Row], incoming: List[Row], limits: OutboxLimits, free: int,
                     plan: EvictionPlan) -> None:
    """What docs/spec.md §6 promises about any plan, and that the plan evicts no more than needed."""
    every = stored + incoming
    normal = [s for c, s in every if not c]
    critical = [s for c, s in every if c]
    budget = sum(s for _, s in stored) + max(0, free - limits.min_free_bytes)

    def after(n: int, c: int) -> Tuple[int, int]:
        return len(every) - n - c, sum(normal[n:]) + sum(critical[c:])

    rows_left, bytes_left = after(plan.normal, plan.critical)
    fits = bytes_left <= budget
    if plan.normal < len(normal):  # normals left: every limit holds
        assert rows_left <= limits.max_events and bytes_left <= limits.max_bytes and fits
    assert plan.critical == 0, "no limit evicts a critical event while writes succeed"
    if plan.normal:  # one fewer normal would not have been enough
        r, b = after(plan.normal - 1, 0)
        assert r > limits.max_events or b > limits.max_bytes or b > budget


@settings(max_examples=300, deadline=None)
@given(stored=st.lists(st.tuples(st.booleans(), st.integers(1, 5000)), max_size=30),
       incoming=st.lists(st.tuples(st.booleans(), st.integers(1, 5000)), min_size=1, max_size=10),
       max_events=st.integers(1, 40), max_kb=st.integers(1, 200),
       floor_kb=st.integers(0, 100), free_kb=st.integers(0, 300))
def test_plan_invariants(stored: List[Row], incoming: List[Row], max_events: int, max_kb: int,
                         floor_kb: int, free_kb: int) -> None:
    limits = OutboxLimits(max_events=max_events, max_mb=max_kb / 1024, min_free_mb=floor_kb / 1024)
    every = stored + incoming
    plan = plan_eviction(Totals.of(stored), Totals.of(incoming), free_disk_bytes=free_kb * 1024,
                         limits=limits, oldest_normal=[s for c, s in every if not c],
                         oldest_critical=[s for c, s in every if c])
    check_invariants(stored, incoming, limits, free_kb * 1024, plan)


def test_sizes_are_read_lazily() -> None:
    consumed = []

    def sizes() -> object:
        for i in range(1_000_000):
            consumed.append(i)
            yield 10

    plan = plan_eviction(Totals(normal_rows=1_000_000, normal_bytes=10_000_000), Totals(1, 10),
                         free_disk_bytes=BIG_DISK, limits=OutboxLimits(max_events=1_000_000),
                         oldest_normal=sizes(), oldest_critical=[])  # type: ignore[arg-type]
    assert plan == EvictionPlan(1, 0)
    assert len(consumed) == 1


def test_short_size_iterable_stops_without_error() -> None:
    plan = plan_eviction(Totals(normal_rows=10, normal_bytes=1000), Totals(1, 100),
                         free_disk_bytes=BIG_DISK, limits=OutboxLimits(max_events=5),
                         oldest_normal=[100, 100], oldest_critical=[])
    assert plan == EvictionPlan(2, 0)


def test_plan_is_false_when_nothing_goes() -> None:
    assert not EvictionPlan()
    assert EvictionPlan(0, 1)


@pytest.mark.parametrize("normal,critical,expected", [
    ([], [], None),
    ([3, 1, 2], [], EvictionReport(3, 0, 1, 3)),
    ([], [7], EvictionReport(0, 1, 7, 7)),
    ([10, 11], [2, 30], EvictionReport(2, 2, 2, 30)),
])
def test_report_from_seqs(normal: List[int], critical: List[int],
                          expected: Optional[EvictionReport]) -> None:
    assert EvictionReport.from_seqs(normal, critical) == expected


def test_report_merge_minus_and_data() -> None:
    a = EvictionReport(2, 0, 10, 11)
    b = EvictionReport(1, 1, 5, 20)
    merged = a.merge(b)
    assert merged == EvictionReport(3, 1, 5, 20)
    assert a.merge(None) is a
    assert merged.minus(a) == EvictionReport(1, 1, 5, 20)
    assert merged.minus(merged) is None
    assert merged.as_data() == {"count": 4, "normal": 3, "critical": 1, "first_seq": 5, "last_seq": 20}
    assert EvictionReport.from_data(merged.as_data()) == merged


@pytest.mark.parametrize("kwargs", [
    {"normal_count": 0, "critical_count": 0, "first_seq": 1, "last_seq": 1},
    {"normal_count": 1, "critical_count": 0, "first_seq": 5, "last_seq": 4},
    {"normal_count": -1, "critical_count": 2, "first_seq": 1, "last_seq": 4},
])
def test_report_validates(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        EvictionReport(**kwargs)


@pytest.mark.parametrize("kwargs,word", [
    ({"max_events": 0}, "max_events"),
    ({"max_events": 1.5}, "max_events"),
    ({"max_events": True}, "max_events"),
    ({"max_mb": 0}, "max_mb"),
    ({"min_free_mb": -1}, "min_free_mb"),
])
def test_limits_validate(kwargs: dict, word: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=word):
        OutboxLimits(**kwargs)


def test_limits_defaults_follow_spec() -> None:
    limits = OutboxLimits()
    assert (limits.max_events, limits.max_bytes, limits.min_free_bytes) == (100_000, 64 * MB, 50 * MB)


def test_totals() -> None:
    t = Totals.of([(N, 10), (C, 5), (N, 1)])
    assert t == Totals(2, 11, 1, 5)
    assert (t.rows, t.bytes) == (3, 16)
    assert t + Totals(1, 1, 1, 1) == Totals(3, 12, 2, 6)
    with pytest.raises(ValueError):
        Totals(normal_rows=-1)


def test_row_size() -> None:
    assert row_size(payload=300, text_fields=50) == 350 + ROW_OVERHEAD
    with pytest.raises(ValueError):
        row_size(payload=-1, text_fields=0)


# -- a write that failed for lack of space (docs/spec.md §6, version 2) -------------------
@pytest.mark.parametrize("needed,normal,critical,expected", [
    (1, [], [], (0, 0)),                                   # nothing to give: the write fails
    (100, [300], [300, 300], (1, 0)),                      # normal events go first
    (500, [300], [300, 300], (1, 1)),                      # then the oldest critical ones
    (250, [100, 100], [100, 100], (2, 1)),
    (10_000, [100], [100, 100], (1, 2)),                   # all of them, and no more
    (0, [100], [100], (0, 0)),
])
def test_plan_room(needed: int, normal: List[int], critical: List[int],
                   expected: Tuple[int, int]) -> None:
    plan = plan_room(needed, oldest_normal=normal, oldest_critical=critical)
    assert (plan.normal, plan.critical) == expected


@given(needed=st.integers(0, 5000), normal=st.lists(st.integers(1, 1000), max_size=10),
       critical=st.lists(st.integers(1, 1000), max_size=10))
def test_plan_room_frees_enough_and_no_more(needed: int, normal: List[int],
                                            critical: List[int]) -> None:
    plan = plan_room(needed, oldest_normal=normal, oldest_critical=critical)
    freed = sum(normal[:plan.normal]) + sum(critical[:plan.critical])
    if plan.critical:
        assert plan.normal == len(normal), "criticals go only once every normal went"
    if plan.normal < len(normal) or plan.critical < len(critical):
        assert freed >= needed
    last = critical[plan.critical - 1] if plan.critical else (
        normal[plan.normal - 1] if plan.normal else 0)
    assert freed - last < needed or not (plan.normal or plan.critical)

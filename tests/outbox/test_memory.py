"""agent.outbox.memory: bounded, critical first, sans-IO (docs/spec.md §6)."""
from __future__ import annotations

import pytest

from agent.outbox.memory import MemoryBuffer, memory_key
from agent.outbox.rows import OutboxRow
from tests.helpers import IO_MODULES, top_level_imports


def add(buf: MemoryBuffer, seq: int, critical: bool, payload: bytes = b"x" * 10):  # type: ignore[no-untyped-def]
    return buf.add(OutboxRow(seq=seq, critical=critical, topic="t", payload=payload, jti=f"j{seq}",
                             sensor="sos" if critical else "door", type="sos.pressed" if critical
                             else "door.opened", created=0.0))


def test_rows_leave_critical_first_then_in_seq_order_with_negative_keys() -> None:
    buf = MemoryBuffer()
    for seq, critical in ((1, False), (2, True), (3, False), (4, True)):
        add(buf, seq, critical)
    batch = buf.next_batch(10)
    assert [r.seq for r in batch] == [2, 4, 1, 3]
    assert all(r.row_id < 0 for r in batch)
    assert [r.seq for r in buf.next_batch(2, exclude={batch[0].row_id})] == [4, 1]


def test_ack_forgets_and_counts_only_what_was_held() -> None:
    buf = MemoryBuffer()
    key, _ = add(buf, 1, True)
    assert key < 0 and buf.ack([key, -999]) == 1
    assert len(buf) == 0 and buf.size == 0 and buf.next_batch(5) == []


def test_when_full_the_oldest_normal_goes_before_any_critical() -> None:
    buf = MemoryBuffer(max_events=3)
    add(buf, 1, True)
    add(buf, 2, False)
    add(buf, 3, False)
    _, evicted = add(buf, 4, True)
    assert [r.seq for r in evicted] == [2]
    _, evicted = add(buf, 5, True)
    assert [r.seq for r in evicted] == [3]
    assert sorted(r.seq for r in buf.rows()) == [1, 4, 5]
    assert (buf.evicted_normal, buf.evicted_critical) == (2, 0)


def test_with_only_critical_left_the_oldest_critical_gives_way_to_the_newest() -> None:
    buf = MemoryBuffer(max_events=2)
    add(buf, 1, True)
    add(buf, 2, True)
    _, evicted = add(buf, 3, False)
    assert [r.seq for r in evicted] == [3]      # a normal event never displaces an alarm
    _, evicted = add(buf, 4, True)
    assert [r.seq for r in evicted] == [1]
    assert sorted(r.seq for r in buf.rows()) == [2, 4]
    assert (buf.evicted_normal, buf.evicted_critical) == (1, 1)


def test_the_byte_bound_holds_too() -> None:
    buf = MemoryBuffer(max_bytes=100)
    for seq in range(1, 20):
        add(buf, seq, seq % 2 == 0, payload=b"y" * 19)     # 20 bytes with the topic
    assert buf.size <= 100 and len(buf) == 5
    assert all(r.critical for r in buf.rows())           # normal ones went first


def test_supersede_drops_only_that_sensor_and_type() -> None:
    buf = MemoryBuffer()
    add(buf, 1, False)
    add(buf, 2, True)
    assert buf.supersede("door", "door.opened") == 1
    assert [r.seq for r in buf.rows()] == [2]


def test_bad_bounds_and_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        MemoryBuffer(max_events=0)
    with pytest.raises(ValueError, match="payload"):
        OutboxRow(seq=1, critical=True, topic="t", payload=b"", jti="j", sensor="s",
                  type="a.b", created=0.0)


def test_a_held_row_is_the_signed_row_under_a_negative_key_never_an_outbox_id() -> None:
    buf = MemoryBuffer()
    signed = OutboxRow(seq=7, critical=True, topic="t", payload=b"tok", jti="j7", sensor="sos",
                       type="sos.pressed", created=1.0, row_id=42)   # an id it must not keep
    key, evicted = buf.add(signed)
    [held] = buf.rows()
    assert evicted == [] and key < 0 and memory_key(held) == key
    assert (held.seq, held.payload, held.jti) == (7, b"tok", "j7")
    with pytest.raises(ValueError, match="not given out by a MemoryBuffer"):
        memory_key(signed)


def test_the_module_stays_sans_io() -> None:
    import agent.outbox.memory as module
    imported = top_level_imports(module)
    assert imported and not imported & IO_MODULES, imported & IO_MODULES

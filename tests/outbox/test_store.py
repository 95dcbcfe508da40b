"""The durable outbox against a real SQLite file (docs/spec.md §6)."""
from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable, Iterator, List, Set

import pytest

from agent.errors import OutboxError
from agent.outbox.store import Outbox, OutboxRow
from agent.outbox.policy import MB, EvictionReport, OutboxLimits

REPO = Path(__file__).resolve().parents[2]


def row(seq: int, critical: bool = False, size: int = 200, sensor: str = "front_door") -> OutboxRow:
    return OutboxRow(seq=seq, critical=critical, topic=f"homecare/gw-1/events/{sensor}",
                     payload=b"x" * size, jti=f"jti-{seq}", sensor=sensor,
                     type="sos.pressed" if critical else "door.opened", created=1000.0 + seq)


class Disk:
    """An injectable free-disk figure."""

    def __init__(self, free: int = 10_000 * MB) -> None:
        self.free = free

    def __call__(self) -> int:
        return self.free


@pytest.fixture
def disk() -> Disk:
    return Disk()


@pytest.fixture
def opener(tmp_path: Path, disk: Disk) -> Iterator[Callable[..., Outbox]]:
    opened: List[Outbox] = []

    def open_(limits: OutboxLimits = OutboxLimits(), name: str = "outbox.sqlite3") -> Outbox:
        box = Outbox.open(tmp_path / name, limits, free_disk=disk)
        opened.append(box)
        return box
    yield open_
    for box in opened:
        box.close()


def seqs(rows: List[OutboxRow]) -> List[int]:
    return [r.seq for r in rows]


# -- order, ack, in flight -------------------------------------------------------------
def test_critical_lane_first_then_seq(opener: Callable[..., Outbox]) -> None:
    box = opener()
    box.put([row(1), row(2), row(3, critical=True)])
    box.put([row(4), row(5, critical=True)])
    assert seqs(box.next_batch(10)) == [3, 5, 1, 2, 4]
    assert seqs(box.next_batch(3)) == [3, 5, 1]


def test_rows_come_back_byte_for_byte(opener: Callable[..., Outbox]) -> None:
    box = opener()
    original = OutboxRow(seq=7, critical=True, topic="homecare/gw-1/events/sos",
                         payload=b"eyJhbGciOiJFZERTQSJ9.e30.\x00sig", jti="5b1e", sensor="sos",
                         type="sos.pressed", created=1764339000.25)
    stored = box.put([original]).rows[0]
    assert stored.row_id is not None
    (back,) = box.next_batch(1)
    assert back == stored
    assert back.payload == original.payload


def test_ack_deletes_only_what_it_names(opener: Callable[..., Outbox]) -> None:
    box = opener()
    stored = box.put([row(1), row(2), row(3)]).rows
    assert box.ack([stored[0].row_id, stored[2].row_id]) == 2  # type: ignore[list-item]
    assert seqs(box.next_batch(10)) == [2]
    assert box.ack([stored[0].row_id, 999]) == 0  # type: ignore[list-item]
    assert box.stats().depth == 1


def test_next_batch_skips_rows_in_flight(opener: Callable[..., Outbox]) -> None:
    box = opener()
    stored = box.put([row(i, critical=(i % 3 == 0)) for i in range(1, 10)]).rows
    first = box.next_batch(4)
    assert seqs(first) == [3, 6, 9, 1]
    in_flight = {r.row_id for r in first if r.row_id is not None}
    assert seqs(box.next_batch(4, in_flight)) == [2, 4, 5, 7]
    every = {r.row_id for r in stored if r.row_id is not None}
    assert box.next_batch(4, every) == []


def test_row_ids_are_never_reused(opener: Callable[..., Outbox]) -> None:
    box = opener()
    a, b = box.put([row(1), row(2)]).rows
    box.ack([b.row_id])  # type: ignore[list-item]
    (c,) = box.put([row(3)]).rows
    assert c.row_id is not None and b.row_id is not None and c.row_id > b.row_id


def test_survives_reopen(opener: Callable[..., Outbox]) -> None:
    box = opener()
    box.put([row(1), row(2, critical=True)])
    box.set_meta("status.last_event.front_door", '{"type": "door.opened"}')
    box.close()
    again = opener()
    assert seqs(again.next_batch(10)) == [2, 1]
    assert again.get_meta("status.last_event.front_door") == '{"type": "door.opened"}'
    assert again.quarantined is None


def test_meta_set_get_delete(opener: Callable[..., Outbox]) -> None:
    box = opener()
    assert box.get_meta("k") is None
    box.set_meta("k", "1")
    box.set_meta("k", "2")
    assert box.get_meta("k") == "2"
    box.set_meta("k", None)
    assert box.get_meta("k") is None


def test_stats_per_lane(opener: Callable[..., Outbox]) -> None:
    box = opener()
    empty = box.stats()
    assert (empty.depth, empty.normal.oldest_created, empty.evicted_total) == (0, None, 0)
    box.put([row(5), row(6, critical=True), row(7)])
    stats = box.stats()
    assert (stats.normal.rows, stats.critical.rows) == (2, 1)
    assert stats.normal.oldest_created == 1005.0 and stats.critical.oldest_created == 1006.0
    assert stats.normal.bytes == 2 * row(5).size


def test_a_bad_row_fails_alone_in_its_group(opener: Callable[..., Outbox]) -> None:
    box = opener()
    box.put([row(1)])
    futures = [box.submit_put([row(s)]) for s in (2, 1, 3)]  # seq 1 again: refused
    assert seqs(list(futures[0].result().rows)) == [2]
    with pytest.raises(OutboxError, match="UNIQUE"):
        futures[1].result()
    assert seqs(list(futures[2].result().rows)) == [3]
    assert seqs(box.next_batch(10)) == [1, 2, 3]
    assert box.stats().normal.rows == 3


def test_burst_is_group_committed(opener: Callable[..., Outbox]) -> None:
    box = opener()
    before = box.commits
    futures = [box.submit_put([row(s)]) for s in range(1, 501)]
    for f in futures:
        f.result(timeout=60)
    assert box.stats().depth == 500
    assert box.commits - before < 100, "a burst must share transactions"


def test_closed_outbox_refuses_work(opener: Callable[..., Outbox]) -> None:
    box = opener()
    box.close()
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.put([row(1)])


# -- eviction --------------------------------------------------------------------------
def test_full_by_count_evicts_oldest_normal_and_reports(opener: Callable[..., Outbox]) -> None:
    box = opener(OutboxLimits(max_events=5))
    box.put([row(1), row(2, critical=True), row(3), row(4), row(5)])
    result = box.put([row(6), row(7, critical=True)])
    assert result.evicted == EvictionReport(2, 0, 1, 3)
    assert seqs(box.next_batch(10)) == [2, 7, 4, 5, 6]
    stats = box.stats()
    assert (stats.evicted_normal_total, stats.evicted_critical_total) == (2, 0)
    assert stats.pending_evictions == EvictionReport(2, 0, 1, 3)


def test_criticals_exceed_count_and_mb_limits(opener: Callable[..., Outbox]) -> None:
    box = opener(OutboxLimits(max_events=3, max_mb=0.001))
    for s in range(1, 11):
        assert box.put([row(s, critical=True)]).evicted is None
    assert box.stats().critical.rows == 10
    # a normal event arriving now is the oldest normal: it is the one that goes
    result = box.put([row(11)])
    assert result.evicted == EvictionReport(1, 0, 11, 11)
    assert box.stats().depth == 10


def test_full_by_megabytes(opener: Callable[..., Outbox]) -> None:
    size = row(1, size=100_000).size
    box = opener(OutboxLimits(max_mb=(3 * size + 10) / MB))
    box.put([row(s, size=100_000) for s in range(1, 4)])
    result = box.put([row(4, size=100_000)])
    assert result.evicted == EvictionReport(1, 0, 1, 1)
    assert box.stats().normal.bytes == 3 * size


def test_disk_floor_drops_normals_but_keeps_criticals(opener: Callable[..., Outbox],
                                                      disk: Disk) -> None:
    box = opener(OutboxLimits(min_free_mb=1))
    box.put([row(1, critical=True), row(2), row(3, critical=True), row(4, critical=True)])
    disk.free = MB  # exactly at the floor: no room to grow
    result = box.put([row(5, critical=True), row(6, critical=True)])
    # the normal one goes; the critical ones stay while writes succeed (docs/spec.md §6)
    assert result.evicted == EvictionReport(1, 0, 2, 2)
    assert seqs(box.next_batch(10)) == [1, 3, 4, 5, 6]
    assert box.disk_low is None         # at the floor, not under it
    disk.free = MB - 1000
    result = box.put([row(7)])          # a normal event under the floor is not kept
    assert result.evicted == EvictionReport(1, 0, 7, 7)
    assert box.disk_low == MB - 1000    # and the loop will say so (buffer.disk_low)


def test_group_members_share_the_disk_headroom(opener: Callable[..., Outbox], disk: Disk) -> None:
    one = row(1).size
    disk.free = MB + 2 * one  # room for two more rows
    box = opener(OutboxLimits(min_free_mb=1))
    futures = [box.submit_put([row(s)]) for s in range(1, 6)]
    evicted = [f.result().evicted for f in futures]
    total = sum(e.normal_count for e in evicted if e is not None)
    assert box.stats().normal.rows + total == 5
    assert box.stats().normal.rows == 2  # the headroom, shared by the group


def test_pending_evictions_persist_and_settle(opener: Callable[..., Outbox]) -> None:
    box = opener(OutboxLimits(max_events=2))
    box.put([row(1), row(2), row(3)])
    box.close()
    box = opener(OutboxLimits(max_events=2))
    pending = box.pending_evictions()
    assert pending == EvictionReport(1, 0, 1, 1)
    # reporting it: the buffer.evicted row itself pushes out another normal row
    result = box.put([row(4, sensor="agent")], settles=pending)
    assert result.evicted == EvictionReport(1, 0, 2, 2)
    assert box.pending_evictions() == EvictionReport(1, 0, 2, 2)  # goes in the next report
    box.put([row(5, critical=True)], settles=box.pending_evictions())
    assert box.pending_evictions() == EvictionReport(1, 0, 3, 3)
    assert box.stats().evicted_total == 3


def test_ack_of_an_evicted_row_is_harmless(opener: Callable[..., Outbox]) -> None:
    box = opener(OutboxLimits(max_events=1))
    (first,) = box.put([row(1)]).rows
    box.put([row(2)])
    assert first.row_id is not None
    assert box.ack([first.row_id]) == 0
    assert seqs(box.next_batch(5)) == [2]


# -- quarantine ------------------------------------------------------------------------
def fill(path: Path, n: int = 2000) -> None:
    box = Outbox.open(path)
    box.put([row(s, critical=(s % 7 == 0)) for s in range(1, n + 1)])
    box.close()


def assert_quarantined_then_fresh(path: Path, words: str = "") -> None:
    box = Outbox.open(path)
    try:
        info = box.quarantined
        assert info is not None, "the corrupt file should have been moved aside"
        assert words.lower() in info.reason.lower()
        assert info.moved_to and all(Path(p).exists() for p in info.moved_to)
        assert Path(info.moved_to[0]).parent == path.parent / "quarantine"
        assert box.stats().depth == 0
        box.put([row(1)])
        assert seqs(box.next_batch(1)) == [1]
    finally:
        box.close()
    again = Outbox.open(path)  # the fresh file is fine: no second quarantine, no crash loop
    try:
        assert again.quarantined is None
        assert seqs(again.next_batch(5)) == [1]
    finally:
        again.close()


def test_garbage_file_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(os.urandom(10_000))
    assert_quarantined_then_fresh(path, "not a database")


def test_zeroed_header_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    fill(path, 200)
    with open(path, "r+b") as f:
        f.write(b"\0" * 100)
    assert_quarantined_then_fresh(path)


def test_bytes_overwritten_in_the_middle_are_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    fill(path, 3000)
    size = path.stat().st_size
    assert size > 100_000
    with open(path, "r+b") as f:
        f.seek((size // 2) // 4096 * 4096)
        f.write(random.Random(1).randbytes(3 * 4096))
    assert_quarantined_then_fresh(path)


def test_truncated_file_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    fill(path, 3000)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 3)
    assert_quarantined_then_fresh(path)


def test_someone_elses_database_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE photos (id INTEGER)")
    conn.commit()
    conn.close()
    assert_quarantined_then_fresh(path, "not an outbox")


def test_wal_without_database_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    Path(f"{path}-wal").write_bytes(os.urandom(5000))
    assert_quarantined_then_fresh(path, "-wal")
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size < 5000


def test_unopenable_path_is_an_error_not_corruption(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.mkdir()
    with pytest.raises(OutboxError, match="cannot open"):
        Outbox.open(path)
    assert path.is_dir() and not (tmp_path / "quarantine").exists()


# -- durability under kill -9 ----------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys
    from agent.outbox.store import Outbox, OutboxRow
    path, base = sys.argv[1], int(sys.argv[2])
    box = Outbox.open(path)
    out = sys.stdout
    def row(seq):
        return OutboxRow(seq=seq, critical=seq % 5 == 0, topic="t/events/s", payload=b"j" * 300,
                         jti="j%d" % seq, sensor="s", type="door.opened", created=float(seq))
    seq = base
    while True:
        seq += 1
        box.put([row(seq)])
        out.write("P %d\\n" % seq); out.flush()
        futures = [(seq + i, box.submit_put([row(seq + i)])) for i in range(1, 1 + seq % 17)]
        for s, f in futures:
            f.result()
            out.write("P %d\\n" % s); out.flush()
        seq += len(futures)
        if seq % 3 == 0:
            old = box.next_batch(4)
            for r in old:
                out.write("a %d\\n" % r.seq)
            out.flush()
            box.ack([r.row_id for r in old])
            for r in old:
                out.write("A %d\\n" % r.seq)
            out.flush()
""")


@pytest.mark.slow
def test_kill_9_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    put: Set[int] = set()
    acking: Set[int] = set()
    acked: Set[int] = set()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for round_ in range(20):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(round_ * 1_000_000)],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        wanted = rng.randrange(1, 400)
        lines = []
        while len(lines) < wanted:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read()  # not communicate(): it would skip what readline buffered
        proc.stdout.close()
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f"seed {seed}: writer ended on its own"
        text = "".join(lines) + rest
        complete = text.splitlines()[:None if text.endswith("\n") else -1]  # drop a cut line
        for line in complete:
            kind, _, number = line.partition(" ")
            {"P": put, "a": acking, "A": acked}[kind].add(int(number))
        conn = sqlite3.connect(str(path))
        try:
            assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)], f"seed {seed}"
            present = {s for (s,) in conn.execute("SELECT seq FROM outbox")}
        finally:
            conn.close()
        missing = put - acking - present
        assert not missing, f"seed {seed} round {round_}: committed but lost: {sorted(missing)[:10]}"
        assert not (acked & present), f"seed {seed}: acknowledged rows came back"
    assert len(put) > 200


def test_supersede_drops_only_undelivered_rows_of_that_type(tmp_path: Path) -> None:
    from agent.outbox.store import Outbox, OutboxRow
    with Outbox.open(tmp_path / "o.sqlite3") as outbox:
        def row(seq: int, type: str) -> OutboxRow:
            return OutboxRow(seq=seq, critical=False, topic="t/agent", payload=b"x",
                             jti=f"j{seq}", sensor="agent", type=type, created=0.0)
        outbox.put([row(1, "agent.heartbeat"), row(2, "agent.started"), row(3, "agent.heartbeat")])
        assert outbox.supersede("agent", "agent.heartbeat") == 2
        assert [r.type for r in outbox.next_batch(10)] == ["agent.started"]
        assert outbox.stats().depth == 1

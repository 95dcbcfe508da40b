"""The outbox on a small, real file system (a tmpfs of a few MB): the free-disk floor
stops only normal events, and critical ones give way only when a write really fails
(docs/spec.md §6, version 2)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from agent.outbox.store import Outbox, OutboxRow
from agent.outbox.policy import OutboxLimits


@pytest.fixture
def small_card(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, unmounted afterwards (we are root on the test machines)."""
    mount = tmp_path / "card"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def alarm(seq: int, type: str = "sos.pressed", size: int = 700) -> OutboxRow:
    """A row the size of a real signed alarm (about 700 bytes of JWT)."""
    return OutboxRow(seq=seq, critical=True, topic="homecare/gw-1/events/sos",
                     payload=b"h." + os.urandom(size // 2).hex().encode()[:size - 4] + b".s",
                     jti=f"jti-{seq}", sensor="sos", type=type, created=1000.0 + seq)


def door(seq: int) -> OutboxRow:
    return OutboxRow(seq=seq, critical=False, topic="homecare/gw-1/events/door",
                     payload=b"h." + b"d" * 600 + b".s", jti=f"jti-{seq}", sensor="door",
                     type="door.opened", created=1000.0 + seq)


def test_two_mb_free_and_the_default_floor_keeps_every_alarm(small_card: Path) -> None:
    with Outbox.open(small_card / "outbox.sqlite3", OutboxLimits()) as box:  # min_free_mb 50
        assert box.disk_low is not None                  # reported from the start
        for seq in range(1, 101):
            kind = "smoke.alarm" if seq % 10 == 0 else "sos.pressed"
            assert box.put([alarm(seq, kind)]).evicted is None, f"seq {seq} evicted an alarm"
        assert [r.seq for r in box.next_batch(200)] == list(range(1, 101))
        normal = box.put([door(101)])                    # the floor stops normal events
        assert normal.evicted is not None and normal.evicted.normal_count == 1
        assert box.stats().normal.rows == 0 and box.stats().critical.rows == 100


def test_only_a_failed_write_makes_old_alarms_give_way(small_card: Path) -> None:
    with Outbox.open(small_card / "outbox.sqlite3", OutboxLimits()) as box:
        first_eviction: Optional[int] = None
        evicted: List[int] = []
        for seq in range(1, 4001):                       # about 3 MB of alarms on 2 MB
            result = box.put([alarm(seq)])               # never raises: the alarm is stored
            if result.evicted is not None:
                first_eviction = first_eviction or seq
                evicted.append(result.evicted.critical_count)
        assert first_eviction is not None and first_eviction > 1000, first_eviction
        stored = [r.seq for r in box.next_batch(5000)]
        assert stored[-1] == 4000                        # the newest is always there
        assert stored == list(range(stored[0], 4001))    # and the oldest went first
        assert box.stats().evicted_critical_total == stored[0] - 1

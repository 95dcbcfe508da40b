"""Damaged rows and bookkeeping in a sound outbox file are set aside, not crashed on
(docs/spec.md §6), and the outbox keeps the seq/boot mark that floors the counters (§4)."""
from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import List

import pytest

from agent.outbox.store import Outbox, OutboxRow


def jwt(seq: int, boot: int = 1) -> bytes:
    """Something shaped like our JWTs (the outbox reads only the claims' seq and boot)."""
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'EdDSA'})}.{part({'seq': seq, 'boot': boot})}.c2ln".encode()


def row(seq: int, critical: bool = False, boot: int = 1) -> OutboxRow:
    return OutboxRow(seq=seq, critical=critical, topic="homecare/gw-1/events/button",
                     payload=jwt(seq, boot), jti=f"jti-{seq}", sensor="button",
                     type="sos.pressed" if critical else "door.opened", created=1000.0 + seq)


def fill(path: Path, rows: List[OutboxRow]) -> None:
    with Outbox.open(path) as box:
        box.put(rows)


def edit(path: Path, sql: str, *args: object) -> None:
    """What a flipped bit or a careless hand does to a file that still passes quick_check."""
    conn = sqlite3.connect(str(path))
    conn.execute(sql, args)
    conn.commit()
    conn.close()


DAMAGE = [
    ("UPDATE outbox SET payload = x'' WHERE seq = 2", "empty payload"),
    ("UPDATE outbox SET payload = 'not bytes' WHERE seq = 2", "payload"),
    ("UPDATE outbox SET seq = -2 WHERE seq = 2", "seq"),
    ("UPDATE outbox SET seq = 'two' WHERE seq = 2", "seq"),
    ("UPDATE outbox SET critical = 7 WHERE seq = 2", "critical"),
    ("UPDATE outbox SET topic = x'00' WHERE seq = 2", "topic"),
    ("UPDATE outbox SET created = 'yesterday' WHERE seq = 2", "created"),
    ("UPDATE outbox SET size = 'big' WHERE seq = 2", "size"),
]


@pytest.mark.parametrize("sql,words", DAMAGE)
def test_a_damaged_row_is_set_aside_while_running(tmp_path: Path, sql: str, words: str) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox.open(path) as box:
        box.put([row(1), row(2, critical=True), row(3)])
        edit(path, sql)
        batch = box.next_batch(10)                 # no exception: delivery goes on
        assert [r.seq for r in batch] == [1, 3]
        found = box.unreported_damage()
        assert len(found) == 1 and found[0].row_id == 2
        assert words.lower() in found[0].reason.lower()
        assert box.stats().depth == 2
        box.put([row(4, critical=True)])           # and a new alarm is stored and offered
        assert [r.seq for r in box.next_batch(10)] == [4, 1, 3]
        box.settle_damage(found)
        assert box.unreported_damage() == []
    with Outbox.open(path) as box:                 # the quarantined row stays out
        assert [r.seq for r in box.next_batch(10)] == [4, 1, 3]
        assert box.unreported_damage() == []


def test_damaged_rows_found_at_open_are_reported_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    fill(path, [row(s) for s in range(1, 6)])
    edit(path, "UPDATE outbox SET seq = -1 WHERE seq = 3")
    edit(path, "UPDATE outbox SET size = -5 WHERE seq = 4")
    with Outbox.open(path) as box:
        assert box.stats().depth == 3               # the damaged rows are not counted
        assert sorted(d.row_id for d in box.unreported_damage()) == [3, 4]
        assert [r.seq for r in box.next_batch(10)] == [1, 2, 5]


@pytest.mark.parametrize("value", ["{not json", "[1, 2]", '{"normal": "x", "critical": 1}',
                                   '{"normal": -1, "critical": 0, "first_seq": 1}'])
def test_damaged_meta_is_reset_and_reported(tmp_path: Path, value: str) -> None:
    path = tmp_path / "outbox.sqlite3"
    fill(path, [row(1)])
    edit(path, "INSERT OR REPLACE INTO meta (key, value) VALUES ('outbox.evicted_totals', ?)", value)
    edit(path, "INSERT OR REPLACE INTO meta (key, value) VALUES ('outbox.pending_evictions', ?)",
         value)
    with Outbox.open(path) as box:                 # no crash at start
        found = box.unreported_damage()
        assert sorted(d.key for d in found) == ["outbox.evicted_totals",
                                                "outbox.pending_evictions"]
        assert box.stats().evicted_total == 0 and box.pending_evictions() is None
        assert [r.seq for r in box.next_batch(10)] == [1]
        box.settle_damage(found)
    with Outbox.open(path) as box:                 # reset for good: reported once
        assert box.unreported_damage() == []


def test_an_empty_file_is_reported_like_a_corrupt_one(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    fill(path, [row(1)])
    path.write_bytes(b"")
    with Outbox.open(path) as box:
        assert box.quarantined is not None and "empty" in box.quarantined.reason
        assert box.stats().depth == 0
    with Outbox.open(path) as box:                 # the fresh file is not "empty" again
        assert box.quarantined is None


def test_the_mark_counts_rows_delivered_quarantined_and_in_quarantined_files(
        tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with Outbox.open(path) as box:
        assert box.counter_floor() == (1, 0)
        box.put([row(1, boot=3), row(2, boot=3)])
        box.ack([r.row_id for r in box.next_batch(10) if r.row_id is not None])
        assert box.stats().depth == 0
        assert box.counter_floor() == (3, 3)       # delivered and gone, still remembered
    fill(path, [row(40, boot=4)])
    edit(path, "UPDATE outbox SET payload = x'' WHERE seq = 40")
    edit(path, "DELETE FROM meta")                 # the outbox's own mark lost too:
    with Outbox.open(path) as box:
        assert box.counter_floor()[0] == 41        # the quarantined row's seq counts
    fill(path, [row(90, boot=6)])
    edit(path, "PRAGMA user_version = 99")         # readable, but not ours to use:
    with Outbox.open(path) as box:                 # the whole file goes to quarantine/
        assert box.quarantined is not None and "schema version" in box.quarantined.reason
        assert box.stats().depth == 0
        assert box.counter_floor() == (91, 6)      # and what it held still floors seq
    (tmp_path / "quarantine" / "outbox.sqlite3.20260101T000000.000000Z").write_bytes(b"junk")
    with Outbox.open(path) as box:                 # an unreadable one is skipped
        assert box.counter_floor() == (91, 6)

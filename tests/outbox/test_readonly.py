"""agent.outbox.readonly: the outbox read by another process, read-only (``status``)."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.errors import OutboxError
from agent.outbox.readonly import LaneSummary, read_only_summary
from agent.outbox.store import Outbox, OutboxRow


def row(seq: int, critical: bool) -> OutboxRow:
    return OutboxRow(seq=seq, critical=critical, topic="homecare/gw-1/events/sos",
                     payload=b"x" * 100, jti=f"jti-{seq}", sensor="sos",
                     type="sos.pressed" if critical else "sos.released", created=1000.0 + seq)


def test_no_file_is_no_outbox_yet(tmp_path: Path) -> None:
    assert read_only_summary(tmp_path / "outbox.sqlite3") is None
    assert not (tmp_path / "outbox.sqlite3").exists()       # and reading made none


def test_lanes_and_evictions_as_the_open_outbox_holds_them(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = Outbox.open(path)
    try:
        box.put([row(1, False), row(2, True), row(3, False), row(4, True), row(5, False)])
        stats = box.stats()
        summary = read_only_summary(path)     # while the owner still has it open
    finally:
        box.close()
    assert summary is not None
    assert summary.critical == LaneSummary(stats.critical.rows, stats.critical.oldest_created)
    assert summary.critical == LaneSummary(2, 1002.0)
    assert summary.normal == LaneSummary(3, 1001.0)
    assert summary.evicted == {"normal": 0, "critical": 0}


def test_an_empty_outbox_has_empty_lanes(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    Outbox.open(path).close()
    summary = read_only_summary(path)
    assert summary is not None
    assert summary.critical == summary.normal == LaneSummary(0, None)


def test_damaged_eviction_bookkeeping_shows_as_unknown(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    Outbox.open(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('outbox.evicted_totals', '{')")
    db.commit()
    db.close()
    summary = read_only_summary(path)
    assert summary is not None and summary.evicted == {"normal": "?", "critical": "?"}


def test_a_file_that_is_no_database_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="cannot read the outbox") as caught:
        read_only_summary(path)
    assert "sudo" in (caught.value.hint or "")


def test_reading_leaves_the_database_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = Outbox.open(path)
    box.put([row(1, True)])
    box.close()
    before = path.read_bytes()
    read_only_summary(path)
    assert path.read_bytes() == before

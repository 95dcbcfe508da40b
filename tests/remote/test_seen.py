"""Replay store (SeenCommands + its JSON file)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.remote.policy import SeenCommands
from agent.remote.seen import FILENAME, CommandStore

EXP = 1_764_340_000


# ------------------------------------------------------------ SeenCommands

def test_the_clock_never_makes_the_store_forget() -> None:
    seen = SeenCommands()
    seen.remember("a", EXP)
    for now in (EXP + 2 * 86400, 4_080_000_000, 0):      # days on, 2099, 1970
        assert seen.expire(now) == 0
    assert seen.seen("a") and seen.floor == 0


def test_a_full_store_forgets_the_lowest_exp_and_refuses_at_or_below_it() -> None:
    seen = SeenCommands(capacity=3)
    for i, jti in enumerate("abcd"):
        seen.remember(jti, EXP + 10 * i)
    assert len(seen) == 3 and seen.floor == EXP                 # "a" went, the floor is its exp
    assert seen.seen("a", EXP)                                  # forgotten, still refused
    assert seen.seen("x", EXP - 100) and seen.seen("x", EXP)    # may have been forgotten
    assert not seen.seen("x", EXP + 1)                          # newer than anything forgotten
    assert seen.seen("b") and seen.seen("d")


def test_remember_keeps_the_later_exp_and_checks_types() -> None:
    seen = SeenCommands(capacity=1)
    seen.remember("a", EXP + 50)
    seen.remember("a", EXP)
    assert seen.seen("a") and seen.to_records() == [{"jti": "a", "exp": EXP + 50}]
    for jti, exp in (("", EXP), ("x", True), ("x", 1.5), (3, EXP)):
        with pytest.raises(ValueError):
            seen.remember(jti, exp)  # type: ignore[arg-type]


def test_records_round_trip() -> None:
    seen = SeenCommands()
    seen.remember("z", EXP)
    seen.remember("a", EXP + 1)
    records = seen.to_records()
    assert records == [{"jti": "z", "exp": EXP}, {"jti": "a", "exp": EXP + 1}]
    again = SeenCommands.from_records(json.loads(json.dumps(records)))
    assert again.to_records() == records
    with pytest.raises(ValueError):
        SeenCommands.from_records([{"jti": "a"}])
    with pytest.raises(ValueError):
        SeenCommands.from_records(["a"])  # type: ignore[list-item]


# ------------------------------------------------------------ CommandStore

def test_store_survives_reload(tmp_path: Path) -> None:
    store = CommandStore(tmp_path)
    assert len(store.load()) == 0 and store.quarantined is None
    seen = SeenCommands()
    seen.remember("c-1", EXP)
    seen.remember("c-2", EXP + 60)
    store.save(seen)
    again = CommandStore(tmp_path).load()
    assert again.seen("c-1") and again.seen("c-2") and not again.seen("c-3")
    assert again.to_records() == seen.to_records()
    assert (tmp_path / FILENAME).stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [FILENAME]  # no temporary file left


def test_floor_and_capacity_survive_save_and_reload(tmp_path: Path) -> None:
    store = CommandStore(tmp_path, capacity=1)
    seen = store.load()
    seen.remember("old", EXP)
    seen.remember("new", EXP + 600)
    store.save(seen)
    again = store.load()
    assert not again.seen("old") and again.seen("old", EXP) and again.seen("new")
    assert (again.floor, again.capacity) == (EXP, 1)


def test_a_version_1_file_still_loads(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_text(json.dumps({"version": 1, "seen": [{"jti": "a", "exp": EXP}]}))
    again = CommandStore(tmp_path).load()
    assert again.seen("a") and again.floor == 0


def test_save_replaces_atomically(tmp_path: Path) -> None:
    store = CommandStore(tmp_path)
    seen = SeenCommands()
    seen.remember("a", EXP)
    store.save(seen)
    inode = (tmp_path / FILENAME).stat().st_ino
    seen.remember("b", EXP)
    store.save(seen)
    assert (tmp_path / FILENAME).stat().st_ino != inode  # a new file renamed over, not rewritten
    assert store.load().seen("b")


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[]", b'{"version": 3, "seen": []}',
                                     b'{"version": 1, "seen": [{"jti": "", "exp": 1}]}',
                                     b'{"version": 2, "floor": "high", "seen": []}'])
def test_corrupt_file_is_quarantined(tmp_path: Path, content: bytes) -> None:
    (tmp_path / FILENAME).write_bytes(content)
    store = CommandStore(tmp_path)
    seen = store.load()
    assert len(seen) == 0
    assert store.quarantined == tmp_path / (FILENAME + ".corrupt")
    assert store.quarantined.read_bytes() == content
    assert not (tmp_path / FILENAME).exists()


def test_save_creates_state_dir(tmp_path: Path) -> None:
    store = CommandStore(tmp_path / "state" / "sub")
    store.save(SeenCommands())
    assert json.loads((tmp_path / "state" / "sub" / FILENAME).read_text()) == {"version": 2, "floor": 0,
                                                                          "seen": []}
    assert os.path.isdir(tmp_path / "state" / "sub")

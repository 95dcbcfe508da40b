"""Counter files lost or rolled back while the outbox holds (or remembers) events: the
agent starts above every seq and boot it has used (docs/spec.md §4, version 2)."""
from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, Dict, List

from agent.record.counters import BACKUP_NAME, FILE_NAME
from tests.broker import MosquittoBroker
from tests.helpers import assert_unique_boot_seq
from tests.integration.agent_harness import SOS_PIN, AgentHarness


def run_once(h: AgentHarness, seen: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Start the agent, collect what it sends until its start-up report, stop it."""
    with h:
        started = h.wait_event(type="agent.started", timeout=10)
        h.wait_event(type="door.closed", initial=True, timeout=10)
        seen += h.events()
    return started


def store_a_press_offline(h: AgentHarness, broker: MosquittoBroker) -> None:
    """One sos.pressed that stays in the outbox (the broker is down when it is made)."""
    with h:
        h.wait_event(type="sos.released", initial=True, timeout=10)
        assert h.agent is not None
        h.stop_cloud()
        broker.stop()
        h.pin(SOS_PIN).drive_low()
        deadline = time.monotonic() + 5
        while h.agent.outbox.stats().critical.rows < 1:
            assert time.monotonic() < deadline, "the press was not stored"
            time.sleep(0.02)  # polling the outbox: the loop has no event for "stored"
    h.pin(SOS_PIN).drive_high()
    broker.start()


def counter_files(state: Path) -> List[Path]:
    return [state / FILE_NAME, state / BACKUP_NAME]


def test_rolled_back_counter_files_never_reuse_seq_or_boot(
        tmp_path: Path, broker: MosquittoBroker, mock_factory: Any) -> None:
    h = AgentHarness(broker, tmp_path, mock_factory)
    seen: List[Dict[str, Any]] = []
    first = run_once(h, seen)
    state = h.config.state_dir
    saved = tmp_path / "saved"
    saved.mkdir()
    for f in counter_files(state):
        shutil.copy2(f, saved / f.name)             # a backup image of the card, say
    second = run_once(h, seen)                      # everything delivered: outbox empty
    for f in counter_files(state):
        shutil.copy2(saved / f.name, f)             # ... restored over newer files
    third = run_once(h, seen)
    assert third["boot"] > second["boot"] > first["boot"]
    assert third["seq"] > max(e["seq"] for e in seen if e["boot"] == second["boot"])
    assert_unique_boot_seq(seen)


def test_lost_counter_files_with_events_waiting_and_in_quarantine(
        tmp_path: Path, broker: MosquittoBroker, mock_factory: Any) -> None:
    h = AgentHarness(broker, tmp_path, mock_factory)
    seen: List[Dict[str, Any]] = []
    run_once(h, seen)
    state = h.config.state_dir
    store_a_press_offline(h, broker)
    for f in counter_files(state):
        f.unlink()                                  # the counters are gone
    h.pin(SOS_PIN).drive_high()
    with h:                                         # waiting rows: no seq reused, higher boot
        waiting = h.wait_event(type="sos.pressed", timeout=10)
        started = h.wait_event(type="agent.started", timeout=10)
        h.wait_event(type="door.closed", initial=True, timeout=10)
        seen += h.events()
    assert started["boot"] > waiting["boot"] and started["seq"] > waiting["seq"]
    assert_unique_boot_seq(seen)

    store_a_press_offline(h, broker)                # again, and this time the row is
    conn = sqlite3.connect(str(state / "outbox.sqlite3"))
    top = conn.execute("SELECT max(seq) FROM outbox").fetchone()[0]
    conn.execute("UPDATE outbox SET critical = 7 WHERE seq = ?", (top,))   # damaged
    conn.execute("DELETE FROM meta WHERE key = 'outbox.mark'")             # and no mark
    conn.commit()
    conn.close()
    for f in counter_files(state):
        f.unlink()
    with h:
        report = h.wait_event(type="buffer.row_quarantined", timeout=10)
        started = h.wait_event(type="agent.started", timeout=10)
        seen += h.events()
    assert report["data"]["seq"] == top
    assert started["seq"] > top and started["boot"] > waiting["boot"]
    assert_unique_boot_seq(seen)

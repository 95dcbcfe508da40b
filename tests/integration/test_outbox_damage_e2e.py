"""Damaged outbox content against the real agent and mosquitto (docs/spec.md §6): rows
and meta values edited with sqlite3 while the agent is stopped and while it runs are set
aside and reported, and delivery goes on at once."""
from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path
from typing import Any, List

import pytest

from agent.record.events import make_event
from agent.outbox.store import Outbox, OutboxRow
from agent.record.signing import Signer
from tests.broker import MosquittoBroker
from tests.helpers import assert_unique_boot_seq
from tests.integration.agent_harness import DEVICE_ID, SOS_PIN, AgentHarness


class _Seq:
    """Counters for events the test stores itself, far above the agent's own."""

    def __init__(self, boot: int, start: int) -> None:
        self.boot, self._next = boot, start

    def next_seq(self) -> int:
        self._next += 1
        return self._next - 1


def store_alarms(h: AgentHarness, n: int, start: int) -> List[OutboxRow]:
    """``n`` signed sos.pressed rows, stored as the agent stores them (it is stopped)."""
    signer = Signer.from_file(h.config.signing.key_file, algorithm="EdDSA")
    seq = _Seq(boot=1, start=start)
    rows = []
    for _ in range(n):
        event = make_event(device_id=DEVICE_ID, type="sos.pressed", sensor="sos", critical=True,
                           data={"state": "pressed"}, recognised_at=time.time(), counters=seq,
                           clock_synced=False, now_epoch=time.time())
        rows.append(OutboxRow(seq=event.seq, critical=True,
                              topic=f"homecare/{DEVICE_ID}/events/sos",
                              payload=signer.sign(event).encode(), jti=event.jti, sensor="sos",
                              type=event.type, created=time.time()))
    with Outbox.open(h.config.state_dir / "outbox.sqlite3") as box:
        return list(box.put(rows).rows)


def edit(h: AgentHarness, sql: str, *args: Any) -> None:
    conn = sqlite3.connect(str(h.config.state_dir / "outbox.sqlite3"), timeout=10)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def no_publisher_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    failed = [r for r in caplog.records if r.exc_info and r.name.startswith("agent")]
    assert not failed, [r.getMessage() for r in failed]


def test_rows_and_meta_damaged_while_stopped(tmp_path: Path, broker: MosquittoBroker,
                                             mock_factory: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    h = AgentHarness(broker, tmp_path, mock_factory)
    with h:
        h.wait_event(type="agent.started")
    empty, good, negative = store_alarms(h, 3, start=500_000)
    edit(h, "UPDATE outbox SET payload = '' WHERE row_id = ?", empty.row_id)
    edit(h, "UPDATE outbox SET seq = -5 WHERE row_id = ?", negative.row_id)
    edit(h, "UPDATE meta SET value = '{not json' WHERE key = 'outbox.mark'")
    with h:
        events = h.wait_events(lambda es: {e["jti"] for e in es} >= {good.jti}
                               and sum(e["type"] == "buffer.row_quarantined" for e in es) == 2
                               and any(e["type"] == "buffer.meta_reset" for e in es),
                               timeout=10, what="the good alarm and three reports")
        quarantined = {e["data"]["row_id"]: e for e in events
                       if e["type"] == "buffer.row_quarantined"}
        assert set(quarantined) == {empty.row_id, negative.row_id}
        assert "payload is text" in quarantined[empty.row_id]["data"]["reason"]
        assert "seq" in quarantined[negative.row_id]["data"]["reason"]
        assert all(e["prio"] == "critical" for e in quarantined.values())
        reset = next(e for e in events if e["type"] == "buffer.meta_reset")
        assert reset["data"]["key"] == "outbox.mark"
        seen = len(h.events())
        h.pin(SOS_PIN).drive_low()                  # and a new alarm goes out as usual
        h.wait_event(type="sos.pressed", timeout=5, after=seen)
        assert_unique_boot_seq(h.events())
    no_publisher_tracebacks(caplog)


def test_a_row_damaged_while_running_is_set_aside_within_one_cycle(
        tmp_path: Path, broker: MosquittoBroker, mock_factory: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with AgentHarness(broker, tmp_path, mock_factory) as h:
        h.wait_event(type="sos.released", initial=True)
        assert h.agent is not None
        h.stop_cloud()
        broker.stop()                               # rows now wait in the outbox
        pin = h.pin(SOS_PIN)
        pin.drive_low()
        h.sync()
        wait = time.monotonic() + 5
        while h.agent.outbox.stats().critical.rows < 1:
            assert time.monotonic() < wait, "the press was not stored"
            time.sleep(0.02)  # polling the outbox: the loop has no event for "stored"
        first = h.agent.outbox.next_batch(10)[0]
        assert first.type == "sos.pressed"
        edit(h, "UPDATE outbox SET payload = x'' WHERE row_id = ?", first.row_id)
        pin.drive_high()
        time.sleep(0.2)  # past the 30 ms release window, so the next press is a new one
        pin.drive_low()
        wait = time.monotonic() + 5
        while h.agent.outbox.stats().critical.rows < 2:
            assert time.monotonic() < wait, "the second press was not stored"
            time.sleep(0.02)
        broker.start()
        h.start_cloud()
        started = time.monotonic()
        events = h.wait_events(lambda es: any(e["type"] == "sos.pressed" for e in es)
                               and any(e["type"] == "buffer.row_quarantined" for e in es),
                               timeout=15, what="the second press and the report")
        report = next(e for e in events if e["type"] == "buffer.row_quarantined")
        assert report["data"]["row_id"] == first.row_id
        assert report["data"]["seq"] == first.seq and report["data"]["type"] == "sos.pressed"
        assert [e["seq"] for e in events if e["type"] == "sos.pressed"] != [first.seq]
        assert time.monotonic() - started < 15
        assert h.agent.publisher.status.connects >= 2
        assert_unique_boot_seq(events)
    no_publisher_tracebacks(caplog)

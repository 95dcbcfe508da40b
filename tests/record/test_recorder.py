"""Recorder: recognised events become signed rows, committed before anyone hears of them."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, List, Tuple

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.record.counters import Counters
from agent.record.events import format_ts
from agent.outbox.store import Outbox
from agent.outbox.policy import OutboxLimits
from agent.outbox.source import OutboxSource
from agent.record.recorder import AgentEvent, Clocks, Recorder
from agent.record.signing import Signer, Verifier
from drivers.events import SensorEvent

START = 1_795_000_000.0


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Tuple[Recorder, Outbox, Signer, List[str]]]:
    key = Ed25519PrivateKey.generate()
    signer = Signer("EdDSA", key)
    outbox = Outbox.open(tmp_path / "outbox.sqlite3", OutboxLimits(max_events=5, max_mb=64,
                                                                   min_free_mb=0))
    counters = Counters(tmp_path / "state")
    woken: List[str] = []
    recorder = Recorder(device_id="gw-1", topic_prefix="homecare/gw-1", signer=signer,
                        counters=counters, outbox=outbox,
                        clocks=Clocks(wall_of=lambda at: START + at, now_epoch=lambda: START + 99,
                                      synced=lambda: True),
                        wake=lambda critical=False: woken.append("critical" if critical else "wake"))
    yield recorder, outbox, signer, woken
    outbox.close()
    counters.close()


def test_events_are_signed_stored_in_order_then_the_publisher_is_woken(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, outbox, signer, woken = parts
    made = recorder.record([
        SensorEvent("door.opened", "front_door", 1.5, {"state": "open"}, False),
        SensorEvent("sos.pressed", "sos", 2.0, {"state": "pressed"}, True),
    ])
    assert woken == ["critical"]     # a critical event ends a back-off wait (docs/spec.md §6)
    rows = outbox.next_batch(10)
    assert [r.type for r in rows] == ["sos.pressed", "door.opened"]   # critical lane first
    assert rows[0].topic == "homecare/gw-1/events/sos"
    verifier = Verifier("EdDSA", signer.public_key, kid=signer.kid)  # type: ignore[arg-type]
    claims = verifier.verify(rows[1].payload.decode("ascii"))
    assert claims["ts"] == format_ts(START + 1.5)       # when the window completed
    assert claims["ts"].endswith(".500Z") and claims["iat"] == int(START + 99)
    assert claims["seq"] == made[0].seq < made[1].seq
    assert recorder.last_by_sensor["sos"].type == "sos.pressed"


def test_a_batch_without_a_critical_event_wakes_the_publisher_plainly(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, _, _, woken = parts
    recorder.record([SensorEvent("door.opened", "front_door", 1.5, {"state": "open"}, False)])
    assert woken == ["wake"]         # ordinary wakes must not cut a back-off wait


def test_an_empty_batch_touches_nothing(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, outbox, _, woken = parts
    assert recorder.record([]) == [] and woken == [] and outbox.next_batch(1) == []


def test_the_observer_hears_each_batch_once_it_is_committed(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, outbox, _, woken = parts
    heard: List[Tuple[List[str], int]] = []
    # the observer runs after the commit: the rows are in the outbox when it is called
    recorder.on_recorded = lambda events: heard.append(
        ([e.type for e in events], len(outbox.next_batch(10))))
    made = recorder.record([SensorEvent("door.opened", "front_door", 1.5, {}, False),
                            SensorEvent("door.closed", "front_door", 3.0, {}, False)])
    recorder.record([])
    assert heard == [(["door.opened", "door.closed"], 2)] and woken == ["wake"]
    assert [e.jti for e in made] == [r.jti for r in outbox.next_batch(10)]


def test_the_observer_hears_events_held_in_memory_too(tmp_path: Path) -> None:
    heard: List[str] = []
    with Counters(tmp_path / "state") as counters:
        recorder = Recorder(device_id="gw-1", topic_prefix="homecare/gw-1",
                            signer=Signer("EdDSA", Ed25519PrivateKey.generate()),
                            counters=counters, outbox=None,
                            clocks=Clocks(wall_of=lambda at: START + at,
                                          now_epoch=lambda: START, synced=lambda: True),
                            storage_failed="read-only file system",
                            on_recorded=lambda events: heard.extend(e.type for e in events))
        recorder.record([AgentEvent("agent.started", 0.0)])
    assert heard == ["agent.started"]   # buffer.storage_failed is held, not recorded by a caller


def test_evictions_are_reported_at_most_once_a_minute(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, outbox, _, _ = parts
    recorder.record([SensorEvent("door.opened", "d", float(i), {}, False) for i in range(8)])
    report = recorder.report_evictions(100.0)
    assert report is not None and report.type == "buffer.evicted"
    assert report.data["normal"] >= 3 and report.data["critical"] == 0
    recorder.record([AgentEvent("agent.heartbeat", 101.0)] * 3)
    assert recorder.report_evictions(130.0) is None          # too soon
    assert recorder.next_eviction_report() == 160.0
    later = recorder.report_evictions(160.0)
    assert later is not None and later.data["count"] >= 1


def test_outbox_source_acks_without_waiting_and_never_offers_an_acked_row(parts) -> None:  # type: ignore[no-untyped-def]
    recorder, outbox, _, _ = parts
    recorder.record([SensorEvent("door.opened", "d", 1.0, {}, False)] * 2)
    source = OutboxSource(outbox)
    first = source.next_batch(1, frozenset())
    source.ack([first[0].row_id])
    rest = source.next_batch(5, frozenset())
    assert [r.row_id for r in rest] != [first[0].row_id] and len(rest) == 1


def test_free_disk_under_the_floor_is_reported_at_start_and_at_most_once_an_hour(
        tmp_path: Path) -> None:
    free = [30 * 2**20]                                   # 30 MB free, floor 50 MB
    outbox = Outbox.open(tmp_path / "outbox.sqlite3", OutboxLimits(), free_disk=lambda: free[0])
    with Counters(tmp_path / "state") as counters:
        recorder = Recorder(device_id="gw-1", topic_prefix="homecare/gw-1",
                            signer=Signer("EdDSA", Ed25519PrivateKey.generate()),
                            counters=counters, outbox=outbox,
                            clocks=Clocks(wall_of=lambda at: START + at,
                                          now_epoch=lambda: START, synced=lambda: True))
        try:
            recorder.report_evictions(0.0)                # the loop's first turn
            low = [r for r in outbox.next_batch(10) if r.type == "buffer.disk_low"]
            assert len(low) == 1 and low[0].critical
            recorder.report_evictions(1800.0)             # still low: not again within the hour
            recorder.report_evictions(3599.0)
            assert sum(r.type == "buffer.disk_low" for r in outbox.next_batch(10)) == 1
            recorder.report_evictions(3600.0)
            assert sum(r.type == "buffer.disk_low" for r in outbox.next_batch(10)) == 2
            free[0] = 60 * 2**20                          # space again: measured at the put
            recorder.record([AgentEvent("agent.heartbeat", 3700.0)])
            recorder.report_evictions(7300.0)
            assert sum(r.type == "buffer.disk_low" for r in outbox.next_batch(10)) == 2
        finally:
            outbox.close()


# --- storage failure is a degraded mode (docs/spec.md §6) -----------------------------------

def _degraded_parts(folder: Path):  # type: ignore[no-untyped-def]
    key = Ed25519PrivateKey.generate()
    signer = Signer("EdDSA", key)
    outbox = Outbox.open(folder / "outbox.sqlite3", OutboxLimits(min_free_mb=0))
    counters = Counters(folder / "state", block=10_000)
    recorder = Recorder(device_id="gw-1", topic_prefix="homecare/gw-1", signer=signer,
                        counters=counters, outbox=outbox,
                        clocks=Clocks(wall_of=lambda at: START + at, now_epoch=lambda: START + 99,
                                      synced=lambda: True))
    verifier = Verifier("EdDSA", signer.public_key, kid=signer.kid)  # type: ignore[arg-type]
    return recorder, outbox, counters, verifier


@pytest.fixture
def small_fs_kb() -> int:
    """small_fs (tests/conftest.py) at 2 MiB here."""
    return 2048


def _claims(verifier: Verifier, rows) -> List[dict]:  # type: ignore[no-untyped-def,type-arg]
    return [verifier.verify(r.payload.decode("ascii")) for r in rows]


def test_a_full_disk_keeps_events_in_memory_signed_once_after_a_storage_failed(small_fs) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import assert_unique_boot_seq

    recorder, outbox, counters, verifier = _degraded_parts(small_fs.path)
    try:
        recorder.record([SensorEvent("door.opened", "d", 1.0, {}, False)])
        filler = small_fs.fill()
        # the outbox's reserve would let an alarm in (it is there for that); this test is
        # about a disk with no byte left at all, so that room is taken too
        (small_fs.path / "outbox.sqlite3-reserve").unlink()
        small_fs.fill()
        made = recorder.record([SensorEvent("sos.pressed", "sos", 2.0, {"state": "pressed"}, True)])
        assert made and made[0].data["stored"] is False
        source = recorder.source
        out = _claims(verifier, source.next_batch(10, frozenset()))
        assert [c["type"] for c in out] == ["buffer.storage_failed", "sos.pressed", "door.opened"]
        assert out[0]["prio"] == "critical" and out[0]["data"]["stored"] is False
        assert "reason" in out[0]["data"]
        assert out[1]["data"] == {"state": "pressed", "stored": False}
        assert "stored" not in out[2]["data"]                 # that one is on disk
        # retries while the disk stays full never sign again: no seq is spent on them
        seq_before = made[0].seq
        for now in (3.0, 8.0, 14.0, 20.0):
            recorder.retry_storage(now)
        later = recorder.record([SensorEvent("sos.pressed", "sos", 21.0, {}, True)])
        assert later[0].seq == seq_before + 1
        assert recorder.storage_failed is not None
        # a delivered memory row is gone; the rest moves to the outbox once it can
        memory = [r for r in source.next_batch(10, frozenset()) if r.row_id < 0]
        source.ack([memory[0].row_id])
        filler.unlink()
        assert recorder.next_storage_retry() is not None
        recorder.retry_storage(recorder.next_storage_retry())  # type: ignore[arg-type]
        assert recorder.storage_failed is None
        assert all(r.row_id > 0 for r in source.next_batch(10, frozenset()))
        stored = _claims(verifier, outbox.next_batch(10))
        assert sorted(c["type"] for c in stored) == ["buffer.storage_restored", "door.opened",
                                                     "sos.pressed", "sos.pressed"]
        assert_unique_boot_seq(out + stored)
    finally:
        outbox.close()
        counters.close()


def test_a_card_gone_read_only_publishes_from_memory_and_acks_forget(card) -> None:  # type: ignore[no-untyped-def]
    recorder, outbox, counters, verifier = _degraded_parts(card.path)
    try:
        recorder.record([SensorEvent("sos.pressed", "sos", 1.0, {}, True)])
        source = recorder.source
        stored = source.next_batch(10, frozenset())
        card.fail()
        source.ack([stored[0].row_id])          # its delete cannot be written ...
        recorder.record([SensorEvent("sos.pressed", "sos", 2.0, {}, True)])
        rows = source.next_batch(10, frozenset())
        # ... but it is never offered again: the broker has it
        assert [c["type"] for c in _claims(verifier, rows)] == ["buffer.storage_failed",
                                                                "sos.pressed"]
        source.ack([r.row_id for r in rows])
        assert source.next_batch(10, frozenset()) == []
        recorder.retry_storage(100.0)            # still read-only: nothing breaks
        assert recorder.storage_failed is not None
    finally:
        outbox.close()
        counters.close()


def test_no_outbox_at_all_from_the_start_is_the_same_degraded_mode(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    signer = Signer("EdDSA", key)
    with Counters(tmp_path / "state") as counters:
        recorder = Recorder(device_id="gw-1", topic_prefix="homecare/gw-1", signer=signer,
                            counters=counters, outbox=None,
                            clocks=Clocks(wall_of=lambda at: START + at,
                                          now_epoch=lambda: START, synced=lambda: True),
                            storage_failed="cannot open the outbox: read-only file system")
        recorder.record([AgentEvent("agent.started", 0.0)])
        verifier = Verifier("EdDSA", signer.public_key, kid=signer.kid)  # type: ignore[arg-type]
        out = _claims(verifier, recorder.source.next_batch(10, frozenset()))
        assert [c["type"] for c in out] == ["buffer.storage_failed", "agent.started"]
        assert "read-only" in out[0]["data"]["reason"]

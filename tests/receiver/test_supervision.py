"""Supervision on a virtual clock: silent after 3 heartbeats or offline, back on an event."""
import pytest

from receiver.supervision import Supervisor


def test_silent_after_three_heartbeats_without_events_then_back_on_the_next():
    sup = Supervisor({"gw-1": 10.0, "gw-2": 100.0}, now=1000.0)
    assert sup.seen("gw-1", 1005.0) == []
    assert sup.next_deadline() == 1035.0
    assert sup.advance(1034.9) == []
    changes = sup.advance(1035.0)
    assert [(c.device_id, c.type, c.reason, c.last_seen) for c in changes] == \
        [("gw-1", "gateway.silent", "no_events", 1005.0)]
    assert sup.advance(2000.0)[0].device_id == "gw-2"   # never seen: watched from the start
    assert sup.advance(5000.0) == []                     # silent once, not again
    back = sup.seen("gw-1", 5001.0)
    assert [(c.type, c.at) for c in back] == [("gateway.back", 5001.0)]
    assert sup.state("gw-1") == "watching"
    assert sup.next_deadline() == 5031.0


def test_each_event_pushes_the_deadline():
    sup = Supervisor({"gw-1": 10.0}, now=0.0)
    for t in range(0, 300, 29):
        assert sup.seen("gw-1", float(t)) == []
        assert sup.advance(float(t) + 29.0) == []


def test_retained_offline_makes_it_silent_at_once_and_an_older_status_is_ignored():
    sup = Supervisor({"gw-1": 900.0}, now=0.0)
    sup.seen("gw-1", 50.0)
    assert sup.offline("gw-1", 40.0) == []               # older than the last event
    changes = sup.offline("gw-1", 60.0)
    assert [(c.type, c.reason) for c in changes] == [("gateway.silent", "offline")]
    assert sup.offline("gw-1", 61.0) == []
    assert sup.advance(10_000.0) == []
    assert [c.type for c in sup.seen("gw-1", 70.0)] == ["gateway.back"]


def test_restored_silent_gateway_comes_back_and_unknown_ones_are_ignored():
    sup = Supervisor({"gw-1": 5.0}, now=0.0)
    sup.restore_silent("gw-1")
    assert sup.advance(100.0) == []
    assert sup.seen("nobody", 1.0) == [] and sup.offline("nobody", 1.0) == []
    assert [c.type for c in sup.seen("gw-1", 101.0)] == ["gateway.back"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="heartbeat"):
        Supervisor({"gw-1": 0.0}, now=0.0)
    with pytest.raises(ValueError, match="factor"):
        Supervisor({"gw-1": 1.0}, now=0.0, factor=0)

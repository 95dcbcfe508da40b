"""agent.app.status: the snapshot, the heartbeat's summary and status.json, from real pieces."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Dict, Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.alarms.feedback import Feedback
from agent.app.actions import Actions
from agent.app.sensors import Sensors
from agent.app.status import STATUS_FILE, AgentStatus, StatusFile
from agent.app.storage import OutboxSlot
from agent.delivery.link import LinkStatus
from agent.outbox.store import Outbox
from agent.record.counters import Counters
from agent.record.recorder import AgentEvent, Clocks, Recorder
from agent.record.signing import Signer
from drivers.sos import SosButton


class Link:
    """What the publisher offers the status: its current LinkStatus value."""

    def __init__(self) -> None:
        self.status = LinkStatus(connected=True, connects=2, reconnects=1, delivered=5,
                                 endpoint="node2.example.org:8884")


class Rejections:
    def __init__(self, n: int) -> None:
        self.n = n

    def policy_failures(self) -> int:
        return self.n


class Pin:
    def read(self) -> bool:
        return False


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Dict[str, Any]]:
    slot = OutboxSlot(lambda: Outbox.open(tmp_path / "outbox.sqlite3"))
    slot.open()
    assert slot.current is not None
    counters = Counters(tmp_path / "state")
    recorder = Recorder(device_id="gw-1", topic_prefix="homecare/gw-1",
                        signer=Signer("EdDSA", Ed25519PrivateKey.generate()), counters=counters,
                        outbox=slot.current, clocks=Clocks(wall_of=lambda at: 1.8e9 + at,
                                                           now_epoch=lambda: 1.8e9,
                                                           synced=lambda: False))
    sensors = Sensors({"sos": SosButton("sos")}, {"sos": Pin()})
    sensors.start(0.0)
    sensors.advance(1.0)
    link, feedback, epoch = Link(), Feedback(), {"now": 1.9e9}
    status = AgentStatus(device_id="gw-1", link=link, outbox=slot, recorder=recorder,
                         sensors=sensors, feedback=feedback, counters=counters,
                         commands=Rejections(2), epoch=lambda: epoch["now"])
    yield {"status": status, "recorder": recorder, "link": link, "sensors": sensors,
           "feedback": feedback, "tmp": tmp_path, "epoch": epoch}
    slot.close()
    counters.close()


def test_the_snapshot_is_what_status_json_has_always_held(rig: Dict[str, Any]) -> None:
    [event] = rig["recorder"].record([AgentEvent("agent.started", 1.0, {})])
    snap = rig["status"].snapshot().as_json()
    assert set(snap) == {"pid", "version", "device", "updated", "link", "sensors",
                         "last_events", "feedback", "storage"}
    assert snap["device"] == "gw-1" and snap["updated"] == 1.9e9
    assert snap["link"] == {"connected": True, "endpoint": "node2.example.org:8884", "since": None, "connects": 2, "reconnects": 1,
                            "stalls": 0, "last_error": None, "delivered": 5, "rejected": 0,
                            "last_rejected_reason": None, "last_rejected_at": None}
    assert snap["sensors"] == {"sos": {"state": "released", "raw": False}}
    assert snap["last_events"] == {"agent": {"type": "agent.started", "ts": event.ts,
                                             "seq": event.seq}}
    assert snap["storage"] == {"failed": None, "memory_depth": 0, "counters_saved": True}
    assert snap["feedback"]["phase"] == "idle"
    json.dumps(snap)                                   # all of it is JSON


def test_the_summary_counts_the_outbox_and_the_forged_commands(rig: Dict[str, Any]) -> None:
    rig["recorder"].record([AgentEvent("agent.started", 1.0, {}),
                            AgentEvent("buffer.quarantined", 1.0, {}, critical=True)])
    summary = rig["status"].summary()
    assert summary == {"connected": True, "endpoint": "node2.example.org:8884",
                       "reconnects": 1, "outbox_depth": 2,
                       "outbox_critical": 1, "delivered": 5, "inflight": 0,
                       "signature_failures": 2, "open_alarms": 0}
    assert rig["status"].buffered() == 2 and rig["status"].recorded() == 2


def test_a_ping_answers_with_the_snapshot_s_link_sensors_and_feedback(rig: Dict[str, Any]) -> None:
    actions = Actions(feedback=rig["feedback"], link=rig["link"], sensors=rig["sensors"])
    snap = rig["status"].snapshot().as_json()
    assert actions.status() == {k: snap[k] for k in ("link", "sensors", "feedback")}


def test_status_json_is_written_at_most_once_a_second_and_only_when_changed(
        rig: Dict[str, Any]) -> None:
    path, clock = rig["tmp"] / STATUS_FILE, rig["epoch"]
    clock["now"] = 100.0
    writer = StatusFile(path, rig["status"])
    writer.update(10.0)
    assert json.loads(path.read_text())["updated"] == 100.0
    clock["now"] = 101.0
    rig["link"].status = LinkStatus(connected=False)
    writer.update(10.5)                                   # changed, but within the second
    assert json.loads(path.read_text())["link"]["connected"] is True
    writer.update(11.0)
    assert json.loads(path.read_text())["link"]["connected"] is False
    clock["now"] = 200.0
    writer.update(20.0)                                   # only the time changed: not rewritten
    assert json.loads(path.read_text())["updated"] == 101.0
    writer.update(20.1, force=True)
    assert json.loads(path.read_text())["updated"] == 200.0


def test_an_unwritable_state_folder_is_said_once(rig: Dict[str, Any],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    writer = StatusFile(rig["tmp"] / "missing" / STATUS_FILE, rig["status"])
    with caplog.at_level(logging.WARNING, logger="agent"):
        writer.update(1.0, force=True)
        writer.update(5.0, force=True)
    assert sum("cannot write" in r.getMessage() for r in caplog.records) == 1


def test_the_summary_carries_power_blips_when_there_is_a_mains_sensor(rig: Dict[str, Any]) -> None:
    from drivers.power import MainsMonitor

    mains = MainsMonitor("mains", report_delay_s=10, jitter_s=0)
    sensors = Sensors({"mains": mains}, {"mains": Pin()})
    sensors.start(0.0)
    for at in (5.0, 20.0):                       # two cuts shorter than the report delay
        sensors.edge("mains", True, at)
        sensors.edge("mains", False, at + 2.0)
    old: AgentStatus = rig["status"]
    status = AgentStatus(device_id="gw-1", link=rig["link"], outbox=old._outbox, recorder=rig["recorder"],
                         sensors=sensors, feedback=rig["feedback"], counters=old._counters,
                         commands=None, epoch=lambda: 1.9e9)
    assert status.summary()["power_blips"] == 2
    assert "power_blips" not in old.summary()    # no mains sensor, no count

"""The periodic test report end to end (docs/spec.md §13.3): agent.test over the real broker.

The agent runs on skewed clocks (tests/integration/test_maintenance_e2e.py's ``Skew``):
the test moves both clocks to just past this device's due time and lets the loop turn.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from zoneinfo import ZoneInfo

from agent.rules.testreport import TestReportSchedule, TestReportSettings, device_offset_s
from tests.broker import MosquittoBroker
from tests.integration.agent_harness import DEVICE_ID, SOS_PIN
from tests.integration.test_maintenance_e2e import Skew, epoch, harness

pytestmark = pytest.mark.broker


def test_agent_test_comes_at_the_devices_time_with_its_data(
        broker: MosquittoBroker, tmp_path: Path, mock_factory: Any) -> None:
    skew = Skew()
    h = harness(broker, tmp_path, mock_factory, skew,
                overrides={"device": {"timezone": "Europe/Berlin"},
                           "test_report": {"at": "10:00", "every_days": 1}})
    with h:
        h.wait_event(type="tamper.closed", initial=True)
        h.pin(SOS_PIN).drive_low()
        alarm = h.wait_event(type="sos.pressed")
        expected = TestReportSchedule(TestReportSettings("10:00", 1), ZoneInfo("Europe/Berlin"),
                                      device_offset_s(DEVICE_ID)).next_after(skew.wall())
        assert not any(e["type"] == "agent.test" for e in h.events())
        skew.offset += expected - skew.wall() + 0.5          # just past the due time
        h.sync()
        report = h.wait_event(type="agent.test")
        assert report["prio"] == "normal" and report["sensor"] == "agent"
        assert epoch(report["ts"]) == pytest.approx(expected, abs=2.0)
        data = report["data"]
        assert data["sensors"]["sos"]["state"] == "pressed"
        assert data["sensors"]["lid"] == {"state": "closed", "raw": False}
        # the press, and the stuck button it became (the skew held it past 60 s): both open
        assert sorted(a["type"] for a in data["open_alarms"]) == ["sensor.stuck", "sos.pressed"]
        assert alarm["jti"] in [a["jti"] for a in data["open_alarms"]]
        assert data["faults"] == [{"sensor": "sos", "fault": "stuck"}]
        assert data["last_ack_latency_ms"] is None and data["every_days"] == 1

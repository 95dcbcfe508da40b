"""Away mode end to end (docs/spec.md §14.3): the signed ``mode`` command over the real
broker, ``agent.mode``, ``bad_args``, away silencing a care rule but never an SOS, and a
restart keeping the mode (the whole agent on mock pins, state_dir on disk)."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Dict

import pytest
from zoneinfo import ZoneInfo

from tests.broker import MosquittoBroker
from tests.integration.agent_harness import DOOR_PIN, SOS_PIN, AgentHarness

pytestmark = pytest.mark.broker

TZ = "Asia/Shanghai"


def _overrides() -> Dict[str, Any]:
    """The night-door rule with a window around now, so a door opening raises it at once."""
    local = datetime.now(ZoneInfo(TZ))
    window = {"from": (local - timedelta(hours=1)).strftime("%H:%M"),
              "to": (local + timedelta(hours=1)).strftime("%H:%M")}
    return {"device": {"timezone": TZ}, "care": {"night_door": {"enabled": True, **window}}}


def _door_then_sos(h: AgentHarness) -> None:
    """Open the door and press SOS; return once the SOS arrived (everything before it too)."""
    h.pin(DOOR_PIN).drive_high()
    h.wait_event(type="door.opened")
    h.pin(SOS_PIN).drive_low()
    h.wait_event(type="sos.pressed")
    h.pin(SOS_PIN).drive_high()
    h.pin(DOOR_PIN).drive_low()
    h.wait_event(type="door.closed", initial=None)


def test_mode_command_away_silences_the_rules_not_sos_and_survives_a_restart(
        broker: MosquittoBroker, tmp_path: Path, mock_factory: Any) -> None:
    overrides = _overrides()
    with AgentHarness(broker, tmp_path, mock_factory, overrides=overrides) as h:
        h.wait_event(type="door.closed", initial=True)
        bad = h.send_and_answer(h.sign("mode", args={"mode": "asleep"}))
        assert (bad["type"], bad["data"]["reason"]) == ("command.rejected", "bad_args")
        done = h.send_and_answer(h.sign("mode", args={"mode": "away"}))
        assert done["type"] == "command.done" and done["data"]["mode"] == "away"
        changed = h.wait_event(type="agent.mode")
        assert changed["data"] == {"mode": "away"} and changed["prio"] == "normal"
        again = h.send_and_answer(h.sign("mode", args={"mode": "away"}))
        assert again["type"] == "command.done"
        _door_then_sos(h)
        types = [e["type"] for e in h.events()]
        assert "care.night_door" not in types and types.count("agent.mode") == 1
        h.stop()                                           # a restart: a new agent, same state_dir
        h.start()
        h.wait_event(type="door.closed", initial=True)
        _door_then_sos(h)                                  # still away after the restart
        assert "care.night_door" not in [e["type"] for e in h.events()]
        assert h.send_and_answer(h.sign("mode", args={"mode": "home"}))["type"] == "command.done"
        h.wait_event(type="agent.mode", mode="home")
        h.pin(DOOR_PIN).drive_high()
        alert = h.wait_event(type="care.night_door")
        assert alert["sensor"] == "front_door"
    assert (tmp_path / "state" / "mode").read_text() == "home"

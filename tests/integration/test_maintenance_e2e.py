"""Maintenance mode end to end (docs/spec.md §13.4): signed commands over the real broker.

The agent runs on skewed clocks (:class:`Skew`): the test moves both the monotonic and
the wall clock ahead by whole minutes, then lets the loop turn (``sync``), so a
period of minutes ends in a second of real time. A restart in the middle of the period
builds a new agent on the same state folder with the monotonic clock started again.
"""
from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

from agent.app.daemon import Agent
from agent.app.sdnotify import Notifier
from agent.config.model import Config
from tests.broker import MosquittoBroker
from tests.integration.agent_harness import SOS_PIN, AgentHarness

pytestmark = pytest.mark.broker

TAMPER_PIN = 23
SOS = {"name": "sos", "kind": "sos_button", "pin": SOS_PIN, "pull": "up", "active": "low"}
LID = {"name": "lid", "kind": "tamper", "pin": TAMPER_PIN, "pull": "down", "active": "high",
       "open_ms": 50, "close_ms": 50}


class Skew:
    """Real clocks plus an offset the test moves (both clocks together)."""

    def __init__(self, mono_base: float = 0.0) -> None:
        self.offset = 0.0
        self.mono_base = mono_base

    def clock(self) -> float:
        return time.monotonic() + self.mono_base + self.offset

    def wall(self) -> float:
        return time.time() + self.offset


def harness(broker: MosquittoBroker, folder: Path, factory: Any, skew: Skew,
            state_dir: Optional[Path] = None,
            overrides: Optional[Dict[str, Any]] = None) -> AgentHarness:
    def build(config: Config) -> Agent:
        return Agent.build(config, pin_factory=factory, clock=skew.clock, wall=skew.wall,
                           notifier=Notifier(None))
    h = AgentHarness(broker, folder, factory, build=build,
                     overrides={"sensors": [SOS, LID],
                                **({"state_dir": str(state_dir)} if state_dir else {}),
                                **(overrides or {})})
    return h


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def lid(h: AgentHarness, open_: bool, after: int) -> Dict[str, Any]:
    pin = h.pin(TAMPER_PIN)
    pin.drive_high() if open_ else pin.drive_low()
    return h.wait_event(type="tamper.opened" if open_ else "tamper.closed", after=after)


def open_alarms(h: AgentHarness) -> int:
    assert h.agent is not None
    h.sync()
    return len(h.agent.feedback.book.open_alarms)


@pytest.mark.parametrize("args", [{"minutes": 241}, {"minutes": -1}, {"minutes": 1.5},
                                  {"minutes": True}, {}, {"minutes": 5, "extra": 1}],
                         ids=["241", "-1", "1.5", "true", "missing", "extra-key"])
def test_bad_args_are_rejected(broker: MosquittoBroker, tmp_path: Path, mock_factory: Any,
                               args: Dict[str, Any]) -> None:
    with harness(broker, tmp_path, mock_factory, Skew()) as h:
        h.wait_event(type="tamper.closed", initial=True)
        answer = h.send_and_answer(h.sign("maintenance", args=args))
        assert answer["type"] == "command.rejected"
        assert answer["data"]["reason"] == "bad_args" and answer["data"]["cmd"] == "maintenance"
        assert not any(e["type"].startswith("maintenance.") for e in h.events())
        assert h.agent is not None and not h.agent.maintenance.active


def test_maintenance_survives_a_restart_and_ends_at_its_original_time(
        broker: MosquittoBroker, tmp_path: Path, mock_factory: Any) -> None:
    skew = Skew()
    h = harness(broker, tmp_path, mock_factory, skew).start()
    h.wait_event(type="tamper.closed", initial=True)
    done = h.send_and_answer(h.sign("maintenance", args={"minutes": 10}))
    assert done["type"] == "command.done" and done["data"]["cmd"] == "maintenance"
    started = h.wait_event(type="maintenance.started")
    assert started["prio"] == "normal" and started["sensor"] == "agent"
    until = epoch(started["data"]["until"])
    assert until == pytest.approx(epoch(started["ts"]) + 600, abs=1.0)
    n = len(h.events())
    opened = lid(h, True, n)
    assert opened["prio"] == "normal" and opened["data"]["maintenance"] is True
    assert open_alarms(h) == 0
    lid(h, False, n)
    # nothing else is suppressed: an SOS during maintenance is an alarm
    h.pin(SOS_PIN).drive_low()
    sos = h.wait_event(type="sos.pressed")
    assert sos["prio"] == "critical" and open_alarms(h) == 1
    h.pin(SOS_PIN).drive_high()
    h.wait_event(type="sos.released", after=n)
    assert h.send_and_answer(h.sign("ack", in_reply_to=sos["jti"]))["type"] == "command.done"
    assert open_alarms(h) == 0
    assert h.stop(flush_timeout_s=5.0), "the first run left events undelivered"
    # off for 4 minutes, then a new boot: the monotonic clock starts again near 0
    skew.offset += 240.0
    skew.mono_base = -time.monotonic() + 5.0 - skew.offset
    # the same state folder (new keys: the harness makes its own for each run)
    with harness(broker, tmp_path / "run2", mock_factory, skew, h.files.state_dir) as h:
        h.wait_event(type="tamper.closed", initial=True)
        assert h.agent is not None and h.agent.maintenance.active
        n = len(h.events())
        assert lid(h, True, n)["prio"] == "normal"
        assert open_alarms(h) == 0
        lid(h, False, n)
        skew.offset += 600 - 240 - 60.0   # a minute before the original end: still on
        h.sync()
        assert h.agent.maintenance.active
        skew.offset += 62.0
        h.sync()
        ended = h.wait_event(type="maintenance.ended")
        assert ended["data"]["by"] == "expiry" and ended["data"]["until"] == started["data"]["until"]
        assert epoch(ended["ts"]) == pytest.approx(until, abs=2.0)
        n = len(h.events())
        after = lid(h, True, n)
        assert after["prio"] == "critical" and "maintenance" not in after["data"]
        assert open_alarms(h) == 1


def test_zero_ends_it_and_a_new_one_restarts_from_now(broker: MosquittoBroker, tmp_path: Path,
                                                      mock_factory: Any) -> None:
    skew = Skew()
    with harness(broker, tmp_path, mock_factory, skew) as h:
        h.wait_event(type="tamper.closed", initial=True)
        assert h.send_and_answer(h.sign("maintenance", args={"minutes": 0}))["type"] == "command.done"
        h.sync()
        assert not any(e["type"].startswith("maintenance.") for e in h.events())
        h.send_and_answer(h.sign("maintenance", args={"minutes": 5}))
        first = h.wait_event(type="maintenance.started")
        skew.offset += 120.0
        h.send_and_answer(h.sign("maintenance", args={"minutes": 5}))
        n = len(h.events())
        second = h.wait_events(lambda es: sum(e["type"] == "maintenance.started" for e in es) == 2)
        again = [e for e in second if e["type"] == "maintenance.started"][1]
        assert epoch(again["data"]["until"]) == pytest.approx(epoch(first["data"]["until"]) + 120, abs=1.0)
        h.send_and_answer(h.sign("maintenance", args={"minutes": 0}))
        ended = h.wait_event(type="maintenance.ended", after=n)
        assert ended["data"]["by"] == "command"
        assert h.agent is not None and not h.agent.maintenance.active

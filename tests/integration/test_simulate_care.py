"""`simulate` drives the version-2 care rules end to end (docs/spec.md §14): the real CLI,
a real broker, events verified with the device's public key; timeline time on a fast
virtual clock, with a night window placed around the run's own (real) start time."""
from __future__ import annotations

import datetime
from typing import Any, Dict, List

import pytest
from zoneinfo import ZoneInfo

from agent.record.signing import Verifier, ed25519_thumbprint
from tests.agent_files import AgentFiles, files_for_broker, run_simulate
from tests.broker import MosquittoBroker, Subscriber
from tests.helpers import assert_unique_boot_seq

TZ = "Asia/Shanghai"
SOS = {"name": "sos", "kind": "sos_button", "pin": 17, "hold_ms": 1500}
DOOR = {"name": "front_door", "kind": "door", "pin": 27, "open_ms": 50, "close_ms": 50,
        "pull": "down", "active": "high"}
HALL = {"name": "hall", "kind": "motion", "pin": 22}


def _night_around_now() -> Dict[str, str]:
    local = datetime.datetime.now(ZoneInfo(TZ))
    return {"from": (local - datetime.timedelta(hours=2)).strftime("%H:%M"),
            "to": (local + datetime.timedelta(hours=2)).strftime("%H:%M")}


def _ms(ts: str) -> int:
    return int(datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def _simulate(files: AgentFiles, broker: MosquittoBroker, timeline: str, speed: float,
              count: int) -> List[Dict[str, Any]]:
    """Every event of the run: exactly ``count`` recorded, all delivered and verified."""
    with Subscriber(broker, f"{broker.prefix}/events/#") as sub:
        result = run_simulate(files, timeline, speed=speed)
        assert result.returncode == 0, result.stderr
        assert f"{count} events recorded, {count} delivered, 0 still buffered" in result.stdout, \
            result.stdout
        public = files.device_key.public_key()
        verifier = Verifier("EdDSA", public, kid=ed25519_thumbprint(public))
        claims = [verifier.verify(m.payload.decode()) for m in sub.wait_for(count)]
    assert_unique_boot_seq(claims)
    return claims


@pytest.mark.broker
def test_a_short_sos_press_cancels_the_inactivity_warning(tmp_path: Any, broker: MosquittoBroker) -> None:
    files = files_for_broker(tmp_path / "agent", broker, heartbeat_s=86400, extra={
        "device": {"id": "gw-test", "timezone": TZ}, "sensors": [SOS],
        "care": {"inactivity": {"enabled": True, "mode": "continuous", "hours": 0.5,
                                "warn_min": 5}}})
    # quiet from the start: the warning at 1800 s; a 0.3 s press (< hold_ms) at 1900 s
    timeline = """
- {at: 1900.0, sensor: sos, level: active}
- {at: 1900.3, sensor: sos, level: inactive}
- {at: 2300.0, sensor: sos, level: inactive}
"""
    claims = _simulate(files, broker, timeline, speed=1000, count=5)
    started = next(c for c in claims if c["type"] == "agent.started")
    got = [(round((_ms(c["ts"]) - _ms(started["ts"])) / 1000), c["type"]) for c in claims
           if c["type"] not in ("agent.started", "sos.released")]
    assert got == [(1800, "care.inactivity_warning"), (1900, "sos.short_press"),
                   (1900, "care.inactivity_cancelled")], got
    types = [c["type"] for c in claims]
    assert "sos.pressed" not in types and "care.inactivity" not in types
    warning = next(c for c in claims if c["type"] == "care.inactivity_warning")
    assert warning["prio"] == "normal" and warning["data"]["warn_min"] == 5


@pytest.mark.broker
def test_a_night_exit_without_motion_is_not_returned(tmp_path: Any, broker: MosquittoBroker) -> None:
    files = files_for_broker(tmp_path / "agent", broker, heartbeat_s=86400, extra={
        "device": {"id": "gw-test", "timezone": TZ}, "sensors": [SOS, DOOR, HALL],
        "care": {"night_door": _night_around_now(),   # the window; its own rule stays off
                 "night_exit": {"enabled": True, "return_min": 1}}})
    timeline = """
- {at: 2.0, sensor: front_door, level: active}
- {at: 4.0, sensor: front_door, level: inactive}
- {at: 70.0, sensor: sos, level: inactive}
"""
    claims = _simulate(files, broker, timeline, speed=20, count=6)
    started = next(c for c in claims if c["type"] == "agent.started")
    (alert,) = [c for c in claims if c["type"] == "care.not_returned"]
    assert alert["prio"] == "critical" and alert["sensor"] == "front_door"
    assert abs(_ms(alert["ts"]) - _ms(started["ts"]) - 64_050) <= 50   # closed at 4.05 s + 60 s
    assert alert["data"]["return_min"] == 1
    assert "motion.detected" not in [c["type"] for c in claims]


@pytest.mark.broker
def test_motion_before_return_min_means_back_home(tmp_path: Any, broker: MosquittoBroker) -> None:
    files = files_for_broker(tmp_path / "agent", broker, heartbeat_s=86400, extra={
        "device": {"id": "gw-test", "timezone": TZ}, "sensors": [SOS, DOOR, HALL],
        "care": {"night_door": _night_around_now(),
                 "night_exit": {"enabled": True, "return_min": 1}}})
    timeline = """
- {at: 2.0, sensor: front_door, level: active}
- {at: 4.0, sensor: front_door, level: inactive}
- {at: 62.0, sensor: hall, level: active}
- {at: 63.0, sensor: hall, level: inactive}
- {at: 70.0, sensor: sos, level: inactive}
"""
    claims = _simulate(files, broker, timeline, speed=20, count=5)   # motion is not sent
    assert [c["type"] for c in claims if c["type"].startswith(("care.", "motion."))] == []

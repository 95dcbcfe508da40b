"""Closing the loop, end to end: the whole agent on mock pins against the real mosquitto.

Hostile commands over the broker, a few random payloads, SOS -> ack -> steady LED and a
silent buzzer, the night-door care rule wired in, and commands after a broker restart.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from cryptography.hazmat.primitives import serialization
from zoneinfo import ZoneInfo

from agent.remote.policy import REASONS
from tests.broker import MosquittoBroker
from tests.faultproxy import FaultProxy
from tests.helpers import wait_until
from tests.integration.agent_harness import (BUZZER_PIN, DEVICE_ID, DOOR_PIN, LED_PIN, SOS_PIN,
                                             AgentHarness)

pytestmark = pytest.mark.broker

TYP = "homecare-command+jwt"


def b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def hand_made(h: AgentHarness, header: Dict[str, Any], payload_json: str,
              sign: Optional[Callable[[bytes], bytes]] = None) -> bytes:
    """A compact JWS from JSON *text* (duplicates survive); the care centre's key by default."""
    signing_input = b64(json.dumps(header).encode()) + b"." + b64(payload_json.encode())
    signature = (sign or h.files.cloud_key.sign)(signing_input)
    return signing_input + b"." + b64(signature)


def hostile_table(h: AgentHarness, replayed: bytes) -> List[Tuple[str, bytes, str, bool]]:
    """(name, payload, reason, whether data.command_jti is reported). All ask for ``locate``,
    so a wrongly obeyed one would sound the buzzer."""
    now = int(time.time())
    good = json.dumps(h.claims("locate"))
    cloud_public_pem = h.files.cloud_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    head, body, sig = h.sign("locate").split(b".")
    flipped = bytearray(base64.urlsafe_b64decode(sig + b"=="))
    flipped[5] ^= 0x40
    claims_missing_exp = {k: v for k, v in h.claims("locate").items() if k != "exp"}
    return [
        ("bad signature", head + b"." + body + b"." + b64(bytes(flipped)), "bad_signature", False),
        ("signed by the device's own key", h.sign("locate", key=h.files.device_key),
         "bad_signature", False),
        ("wrong aud", h.sign("locate", aud="gw-someone-else"), "wrong_aud", True),
        ("expired", h.sign("locate", iat=now - 400, exp=now - 100), "expired", True),
        ("replayed jti", replayed, "replayed", True),
        ("alg none", b64(json.dumps({"alg": "none", "typ": TYP}).encode()) + b"."
         + b64(good.encode()) + b".", "bad_signature", False),
        ("HS256 confusion: HMAC keyed with the EdDSA public key",
         hand_made(h, {"alg": "HS256", "typ": TYP}, good,
                   lambda data: hmac.new(cloud_public_pem, data, hashlib.sha256).digest()),
         "bad_signature", False),
        ("unknown cmd", h.sign("reboot"), "unknown_command", True),
        ("mode with wrong args", h.sign("mode", args={"mode": "asleep"}), "bad_args", True),
        ("maintenance for 241 minutes", h.sign("maintenance", args={"minutes": 241}),
         "bad_args", True),
        ("5 KiB payload", h.sign("locate", pad="x" * 5120), "too_large", False),
        ("non-JSON", b"locate please", "malformed", False),
        ("duplicate keys (validly signed)",
         hand_made(h, {"alg": "EdDSA", "typ": TYP}, good[:-1] + ', "cmd": "ack"}'),
         "malformed", False),
        ("missing claims (no exp)",
         hand_made(h, {"alg": "EdDSA", "typ": TYP}, json.dumps(claims_missing_exp)),
         "malformed", True),
        ("wrong typ", h.sign("locate", headers={"typ": "homecare-event+jwt"}), "malformed", True),
        ("empty payload", b"", "malformed", False),
        ("binary garbage", bytes(range(256)), "malformed", False),
    ]


def test_hostile_commands_over_the_broker_are_rejected_and_the_agent_keeps_working(
        broker: MosquittoBroker, tmp_path: Path, mock_factory: Any) -> None:
    with AgentHarness(broker, tmp_path, mock_factory) as h:
        h.wait_event(type="door.closed", initial=True)
        first = h.sign("ping")
        assert h.send_and_answer(first)["type"] == "command.done"
        buzzer = h.pin(BUZZER_PIN)
        buzzer.clear_states()
        table = hostile_table(h, replayed=first)
        assert len(table) >= 12 and {row[2] for row in table} == set(REASONS)
        for name, payload, reason, has_jti in table:
            answer = h.send_and_answer(payload)
            assert answer["type"] == "command.rejected", name
            assert answer["data"]["reason"] == reason, (name, answer["data"])
            assert answer["sensor"] == "agent" and answer["prio"] == "normal"
            assert ("command_jti" in answer["data"]) == has_jti, (name, answer["data"])
        assert [s.state for s in buzzer.states] == [False], "a rejected locate sounded the buzzer"
        # still working: a valid ping is answered with the status, and a door still reports
        done = h.send_and_answer(h.sign("ping"))
        assert done["type"] == "command.done" and done["data"]["cmd"] == "ping"
        assert done["data"]["status"]["link"]["connected"] is True
        assert done["data"]["status"]["sensors"]["front_door"]["state"] == "closed"
        h.pin(DOOR_PIN).drive_high()
        opened = h.wait_event(type="door.opened")
        assert opened["sensor"] == "front_door" and opened["data"].get("initial") is not True
        h.check_alive()


def _random_payloads(rng: random.Random, h: AgentHarness) -> List[bytes]:
    token = h.sign("locate")
    out = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300))) for _ in range(4)]
    out += [b".".join(b64(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 60))))
                      for _ in range(3)) for _ in range(2)]
    for _ in range(3):  # a valid token with one byte changed
        i = rng.randrange(len(token))
        out.append(token[:i] + bytes([rng.getrandbits(8)]) + token[i + 1:])
    out.append(bytes(rng.getrandbits(8) for _ in range(4097)))
    return out


def test_random_payloads_through_the_broker_never_break_the_agent(
        broker: MosquittoBroker, tmp_path: Path, mock_factory: Any) -> None:
    rng = random.Random(20261128)
    with AgentHarness(broker, tmp_path, mock_factory) as h:
        h.wait_event(type="sos.released", initial=True)
        for payload in _random_payloads(rng, h):
            answer = h.send_and_answer(payload)
            assert answer["type"] == "command.rejected" and answer["data"]["reason"] in REASONS, \
                (payload, answer)
        assert h.send_and_answer(h.sign("ping"))["type"] == "command.done"
        h.check_alive()


def _steady(pin: Any, value: bool, seconds: float) -> bool:
    """The pin holds ``value`` at every look for ``seconds`` (a blink would be caught)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pin.state != value:
            return False
        time.sleep(0.005)  # sampling a blinking output, bounded by the deadline
    return True


def test_sos_to_broker_to_ack_turns_the_led_steady_and_silences_the_buzzer(
        broker: MosquittoBroker, tmp_path: Path, mock_factory: Any) -> None:
    # a chirp far longer than the test, so only the ack can have stopped the buzzer
    patterns = {"pending": [0.02, 0.02], "sent": [0.03, 0.03], "chirp": [0.02, 0.02, 1000]}
    with AgentHarness(broker, tmp_path, mock_factory,
                      overrides={"outputs": {"patterns": patterns}}) as h:
        h.wait_event(type="sos.released", initial=True)
        led, buzzer = h.pin(LED_PIN), h.pin(BUZZER_PIN)
        assert led.state is False and buzzer.state is False
        h.pin(SOS_PIN).drive_low()
        alarm = h.wait_event(type="sos.pressed")
        assert alarm["prio"] == "critical" and alarm["sensor"] == "sos"
        # the PUBACK is in (the subscriber has it), so the LED shows "sent": it blinks
        assert h.agent is not None
        agent = h.agent
        # the agent's own PUBACK may come a little after the subscriber's copy: a loaded
        # machine needs more than a fixed number of loop turns
        wait_until(lambda: agent.feedback.phase == "sent", timeout=10, what="the LED to show sent")
        led.clear_states()
        buzzer.clear_states()
        assert not _steady(led, led.state, 0.3), "the LED should blink while waiting for the ack"
        assert not _steady(buzzer, buzzer.state, 0.3), "the buzzer should chirp"
        # the care centre acknowledges this alarm with the cloud key
        done = h.send_and_answer(h.sign("ack", in_reply_to=alarm["jti"]))
        assert done["type"] == "command.done"
        (closed,) = done["data"]["acknowledged"]
        assert done["data"] == {"cmd": "ack", "command_jti": done["data"]["command_jti"],
                                "in_reply_to": alarm["jti"], "acknowledged": [closed]}
        assert (closed["jti"], closed["type"]) == (alarm["jti"], "sos.pressed")
        assert 0 <= closed["latency_ms"] < 60_000
        assert led.state is True and buzzer.state is False
        assert _steady(led, True, 0.3) and _steady(buzzer, False, 0.3)


def test_sos_feedback_works_with_the_broker_down(broker: MosquittoBroker, tmp_path: Path,
                                                 mock_factory: Any) -> None:
    with AgentHarness(broker, tmp_path, mock_factory,
                      overrides={"outputs": {"patterns": {"pending": [0.02, 0.02]}}}) as h:
        h.wait_event(type="sos.released", initial=True)
        h.stop_cloud()
        broker.kill()
        h.pin(SOS_PIN).drive_low()
        assert h.agent is not None
        led = h.pin(LED_PIN)
        deadline = time.monotonic() + 3.0
        while h.agent.feedback.phase != "pending" and time.monotonic() < deadline:
            h.sync()
        assert h.agent.feedback.phase == "pending"
        assert any(s.state for s in h.pin(BUZZER_PIN).states), "no chirp"
        led.clear_states()
        assert not _steady(led, led.state, 0.2), "the LED should blink fast, offline too"


def _window_around_now(tz: str) -> Tuple[str, str]:
    local = datetime.now(ZoneInfo(tz))
    return ((local - timedelta(hours=1)).strftime("%H:%M"),
            (local + timedelta(hours=1)).strftime("%H:%M"))


def test_night_door_care_rule_is_wired(broker: MosquittoBroker, tmp_path: Path,
                                       mock_factory: Any) -> None:
    tz = "Asia/Shanghai"
    start, end = _window_around_now(tz)
    with AgentHarness(broker, tmp_path, mock_factory, overrides={
            "device": {"timezone": tz},
            "care": {"night_door": {"enabled": True, "from": start, "to": end}}}) as h:
        h.wait_event(type="door.closed", initial=True)
        h.pin(DOOR_PIN).drive_high()
        alert = h.wait_event(type="care.night_door")
        opened = h.wait_event(type="door.opened")
        assert alert["prio"] == "critical" and alert["sensor"] == "front_door"
        assert alert["data"]["door"] == "front_door" and alert["data"]["timezone"] == tz
        assert alert["data"]["window"].startswith(start)
        assert alert["data"]["local_time"].endswith("+08:00")   # Shanghai time, not UTC
        assert opened["prio"] == "normal"


def test_commands_are_handled_after_the_broker_restarts(broker: MosquittoBroker, tmp_path: Path,
                                                        mock_factory: Any) -> None:
    with AgentHarness(broker, tmp_path, mock_factory) as h:
        h.wait_event(type="sos.released", initial=True)
        assert h.send_and_answer(h.sign("ping"))["type"] == "command.done"
        assert h.agent is not None
        connects = h.agent.publisher.status.connects
        h.stop_cloud()
        broker.stop()
        broker.start()   # same ports, no persistence: every subscription is gone
        h.start_cloud()
        deadline = time.monotonic() + 15.0
        while h.agent.publisher.status.connects == connects:
            assert time.monotonic() < deadline, "the agent did not reconnect"
            time.sleep(0.02)  # polling another thread's status, bounded by the deadline
        # the agent subscribes right after CONNACK; a command sent a moment too early is
        # lost (QoS 1 needs a subscription), so retry a few times with fresh ids
        for _ in range(20):
            h.send(h.sign("ping"))
            try:
                answer = h.wait_event(type="command.done", cmd="ping", timeout=0.5)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("no command was handled after the broker restarted")
        assert answer["data"]["status"]["link"]["reconnects"] >= 1


def test_a_command_sent_while_the_gateway_is_offline_arrives_when_it_is_back(
        broker: MosquittoBroker, fault_proxy: FaultProxy, tmp_path: Path,
        mock_factory: Any) -> None:
    """The broker keeps the agent's session, so an `ack` sent during an outage is not lost."""
    with AgentHarness(broker, tmp_path, mock_factory,
                      overrides={"mqtt": {"port": fault_proxy.port}}) as h:
        h.wait_event(type="agent.started")
        h.sync()
        fault_proxy.set_mode("refuse")              # the gateway's internet goes away
        fault_proxy.cut()
        wait_until(lambda: h.agent is not None and not h.agent.publisher.status.connected,
                   timeout=10, what="the agent to notice the outage")
        before = len(h.command_answers())
        h.send(h.sign("ping"))                       # the care centre pings meanwhile
        fault_proxy.set_mode("pass")                 # back online
        h.wait_events(lambda es: len([e for e in es if e["type"] == "command.done"]) > before,
                      timeout=15, what="the queued ping's answer")

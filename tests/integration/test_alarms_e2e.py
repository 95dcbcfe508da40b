"""Closed-loop alarms end to end (docs/spec.md §11) against real mosquitto brokers.

The agent runs in-process on mock pins (tests/integration/agent_harness.py) with a
*shifted* clock: real time plus an offset the test moves forward, injected through
``Agent.build(clock=, wall=)``. So the smallest allowed ``alarms.ack_timeout_s`` and
``repeat_s`` (10 s) pass at once, without sleeping, while the broker, the publisher's
own timers and the mock pins' blink threads run in real time. After a jump,
``h.sync()`` makes the loop turn at the new time (its next deadline is the book's).

Three cases:

* MQTT 5, a broker that PUBACKs every alarm but nobody at the care centre answers:
  reminders after ``ack_timeout_s`` and every ``repeat_s``, the buzzer playing
  ``escalate``, and an ``ack`` naming a reminder closes the alarm: no more reminders.
* MQTT 3.1.1 with an ACL that refuses the device's ``events/sos`` topic: mosquitto
  PUBACKs the refused publishes, so the agent counts them delivered, yet nobody gets
  them, the reminders (same topic) included. What proves the loss is caught is local:
  the reminders the agent recorded (``Recorder.on_recorded``), at most ``max_repeats``,
  and the escalate pattern on the buzzer pin — the people in the home hear it. The
  cloud side (subscribed to everything it may read) is checked to have seen neither
  the alarm nor a reminder, so the test shows the loss really happened.
* ``homecare-agent simulate`` presses SOS with the broker down and is SIGKILLed once the
  alarm is saved; the agent started again on the same state folder shows it open (LED
  blinking, ``status``), reminds on the original schedule, and an ``ack`` closes it with
  ``latency_ms`` from the original ``ts``.
"""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from agent.alarms.feedback import ts_epoch
from agent.app.daemon import Agent
from agent.app.sdnotify import Notifier
from agent.record.events import Event
from tests.broker import MosquittoBroker, TestPKI
from tests.helpers import cli_command, cli_env, run_cli, wait_until
from tests.integration.agent_harness import (BUZZER_PIN, DEVICE_ID, LED_PIN, SOS_PIN,
                                             AgentHarness)

pytestmark = pytest.mark.broker

SCHEDULE = {"ack_timeout_s": 10, "repeat_s": 10}
#: short chirp (over before a reminder), long escalate (still sounding when sampled)
PATTERNS = {"pending": [0.03, 0.03], "sent": [0.05, 0.05], "chirp": [0.01, 0.01, 1],
            "escalate": [0.04, 0.04, 1000]}


class ShiftedClock:
    """Real monotonic and wall time plus an offset the test moves forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def mono(self) -> float:
        return time.monotonic() + self.offset

    def wall(self) -> float:
        return time.time() + self.offset


class Recorded:
    """Every event the agent recorded (``Recorder.on_recorded``), as the agent made it."""

    def __init__(self) -> None:
        self.events: List[Event] = []
        self._lock = threading.Lock()

    def __call__(self, events: Any) -> None:
        with self._lock:
            self.events += list(events)

    def of(self, type: str) -> List[Event]:
        with self._lock:
            return [e for e in self.events if e.type == type]


def harness(broker: MosquittoBroker, folder: Path, factory: Any, clock: ShiftedClock,
            **alarms: Any) -> AgentHarness:
    def build(config: Any) -> Agent:
        return Agent.build(config, pin_factory=factory, notifier=Notifier(None),
                           clock=clock.mono, wall=clock.wall)
    extra = alarms.pop("extra", {})
    return AgentHarness(broker, folder, factory, build=build, overrides={
        "alarms": {**SCHEDULE, **alarms}, "outputs": {"patterns": PATTERNS}, **extra})


def jump_to_next_reminder(h: AgentHarness, clock: ShiftedClock, *, early_s: float = 0.0) -> None:
    """Move the agent's clock to the book's next deadline (minus ``early_s``); one turn."""
    assert h.agent is not None
    due = h.agent.feedback.next_deadline()
    assert due is not None, "no reminder is due"
    clock.offset += max(0.0, due - clock.mono()) - early_s + (0.0 if early_s else 0.01)
    h.sync()


def toggling(pin: Any, seconds: float = 0.3) -> bool:
    """The mock pin changes level within ``seconds`` (a blinking output)."""
    first = pin.state
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pin.state != first:
            return True
        time.sleep(0.005)   # sampling an output, bounded by the deadline
    return False


def assert_escalates(buzzer: Any) -> None:
    """The buzzer pin plays ``escalate``: its on-times are the pattern's, not the chirp's."""
    buzzer.clear_states()
    wait_until(lambda: len(buzzer.states) >= 7, 3.0, "the escalate pattern on the buzzer")
    states = list(buzzer.states)
    # a MockPin state's timestamp is the time since the change before it
    on_times = [b.timestamp for a, b in zip(states[1:], states[2:]) if a.state]
    assert on_times and all(0.02 <= t <= 0.2 for t in on_times), on_times


def test_nobody_acknowledges_reminders_escalate_until_an_ack_names_one(
        broker: MosquittoBroker, tmp_path: Path, mock_factory: Any) -> None:
    clock = ShiftedClock()
    with harness(broker, tmp_path, mock_factory, clock, max_repeats=3) as h:
        h.wait_event(type="sos.released", initial=True)
        h.pin(SOS_PIN).drive_low()
        alarm = h.wait_event(type="sos.pressed")
        h.pin(SOS_PIN).drive_high()          # let go: a held button would turn sensor.stuck
        h.wait_events(lambda es: [e["type"] for e in es].count("sos.released") == 2,
                      what="the release")
        buzzer = h.pin(BUZZER_PIN)
        jump_to_next_reminder(h, clock, early_s=0.2)            # just before: nothing
        assert h.agent is not None and h.agent.feedback.book.open_alarms[0].repeats == 0
        reminders = []
        for repeat in (1, 2):
            jump_to_next_reminder(h, clock)
            reminders.append(h.wait_event(type="alarm.unacknowledged", repeat=repeat))
            assert_escalates(buzzer)
        assert [(r["sensor"], r["prio"], r["data"]["alarm_jti"], r["data"]["alarm_type"],
                 r["data"]["phase"], r["data"]["age_s"]) for r in reminders] == [
            ("sos", "critical", alarm["jti"], "sos.pressed", "sent", 10),
            ("sos", "critical", alarm["jti"], "sos.pressed", "sent", 20)]
        done = h.send_and_answer(h.sign("ack", in_reply_to=reminders[1]["jti"]))
        (closed,) = done["data"]["acknowledged"]
        assert (closed["jti"], closed["type"]) == (alarm["jti"], "sos.pressed")
        expected_ms = (clock.wall() - ts_epoch(alarm["ts"])) * 1000
        assert 20_000 <= closed["latency_ms"] <= expected_ms + 1
        assert h.agent.feedback.next_deadline() is None and h.agent.feedback.phase == "acknowledged"
        assert not toggling(buzzer) and buzzer.state is False    # silenced at once
        clock.offset += 100                                      # past repeat 3's time
        h.sync()
        h.sync()
        assert [e["data"]["repeat"] for e in h.events() if e["type"] == "alarm.unacknowledged"] == [1, 2]
        assert h.pin(LED_PIN).state is True


@pytest.fixture
def acl_broker_311(tmp_path: Path, test_pki: TestPKI) -> Iterator[MosquittoBroker]:
    """A broker whose ACL lets the device publish its own events except ``events/sos``."""
    b = MosquittoBroker(tmp_path / "broker-acl", test_pki)
    b.acl_file.write_text(
        f"user device\n"
        f"topic readwrite homecare/{DEVICE_ID}/events/agent\n"
        f"topic readwrite homecare/{DEVICE_ID}/events/front_door\n"
        f"topic readwrite homecare/{DEVICE_ID}/status\n"
        f"topic read homecare/{DEVICE_ID}/commands\n\n"
        "user consumer\ntopic read homecare/#\ntopic write homecare/+/commands\n")
    b.start()
    yield b
    b.close()


def test_an_alarm_a_3_1_1_acl_drops_after_puback_is_caught_by_the_reminders(
        acl_broker_311: MosquittoBroker, tmp_path: Path, mock_factory: Any) -> None:
    clock, recorded = ShiftedClock(), Recorded()
    with harness(acl_broker_311, tmp_path, mock_factory, clock, max_repeats=2,
                 extra={"mqtt": {"protocol": "3.1.1"}}) as h:
        assert h.agent is not None
        h.agent.recorder.on_recorded = recorded
        h.wait_event(type="agent.started")
        wait_until(lambda: h.agent is not None
                   and h.agent.sensors.state("sos").state == "released", 5.0, "the start-up report")
        h.pin(SOS_PIN).drive_low()
        wait_until(lambda: h.agent is not None and h.agent.feedback.phase == "sent", 5.0,
                   "the PUBACK of the refused alarm")            # "delivered", as far as MQTT goes
        (alarm,) = recorded.of("sos.pressed")
        released = len(recorded.of("sos.released"))
        h.pin(SOS_PIN).drive_high()          # let go: a held button would turn sensor.stuck
        wait_until(lambda: len(recorded.of("sos.released")) == released + 1, 5.0, "the release")
        buzzer = h.pin(BUZZER_PIN)
        for repeat in (1, 2):
            jump_to_next_reminder(h, clock)
            wait_until(lambda: len(recorded.of("alarm.unacknowledged")) == repeat, 5.0,
                       f"reminder {repeat}")
            assert_escalates(buzzer)
        assert h.agent.feedback.next_deadline() is None            # max_repeats reached
        clock.offset += 100
        h.sync()
        reminders = recorded.of("alarm.unacknowledged")
        assert [(r.data["alarm_jti"], r.data["repeat"], r.critical) for r in reminders] == [
            (alarm.jti, 1, True), (alarm.jti, 2, True)]
        wait_until(lambda: h.agent is not None and h.agent.publisher.status.inflight == 0
                   and h.agent.status.buffered() == 0, 5.0, "every publish PUBACKed")
        seen = {e["type"] for e in h.events()}
        assert "sos.pressed" not in seen and "alarm.unacknowledged" not in seen  # really lost
        done = h.send_and_answer(h.sign("ack"))                  # the operator calls, acks all
        assert [a["jti"] for a in done["data"]["acknowledged"]] == [alarm.jti]
        assert not toggling(buzzer) and h.pin(LED_PIN).state is True


def test_an_sos_survives_kill_9_and_its_reminder_keeps_the_original_time(
        broker: MosquittoBroker, tmp_path: Path, mock_factory: Any) -> None:
    clock = ShiftedClock()
    h = harness(broker, tmp_path, mock_factory, clock, ack_timeout_s=30, max_repeats=2)
    alarms_file = h.files.state_dir / "alarms.json"
    timeline = tmp_path / "press.yaml"
    timeline.write_text("- {at: 0.5, sensor: sos, level: active}\n")
    broker.stop()                                                # the SOS happens offline
    with open(tmp_path / "run1.log", "w") as log:
        proc = subprocess.Popen(cli_command("simulate", "--config", str(h.files.config_path),
                                            "--timeline", str(timeline), "--timeout", "60"),
                                stdout=log, stderr=subprocess.STDOUT, env=cli_env(), text=True)
        try:
            wait_until(lambda: alarms_file.exists() and '"sos.pressed"' in alarms_file.read_text(),
                       30.0, "the alarm saved", interval=0.01)
            proc.send_signal(signal.SIGKILL)                         # a power cut, as far as we go
        finally:
            proc.wait(10)
    saved = json.loads(alarms_file.read_text())["alarms"][0]
    assert saved["phase"] == "pending" and saved["repeats"] == 0
    due_wall = saved["due"]
    broker.start()
    with h:
        assert h.agent is not None
        led = h.pin(LED_PIN)
        assert toggling(led), "the LED blinks again for the open alarm"
        # the original schedule: due by the wall clock, not 30 s from this start
        assert h.agent.feedback.next_deadline() - clock.mono() == pytest.approx(
            due_wall - clock.wall(), abs=0.5)
        alarm = h.wait_event(type="sos.pressed")                 # from the outbox, now online
        assert alarm["jti"] == saved["jti"]
        wait_until(lambda: h.agent is not None and h.agent.feedback.phase == "sent", 5.0,
                   "the restored alarm marked sent by its PUBACK")
        wait_until(lambda: "sos.pressed from sos, SENT" in run_cli(
            "status", "--config", str(h.files.config_path)).stdout, 10.0, "status listing it")
        jump_to_next_reminder(h, clock)
        reminder = h.wait_event(type="alarm.unacknowledged")
        assert reminder["data"]["alarm_jti"] == saved["jti"] and reminder["data"]["repeat"] == 1
        assert reminder["data"]["age_s"] == 30                   # from the original ts
        done = h.send_and_answer(h.sign("ack", in_reply_to=saved["jti"]))
        (closed,) = done["data"]["acknowledged"]
        expected_ms = (clock.wall() - ts_epoch(alarm["ts"])) * 1000
        assert closed["jti"] == saved["jti"] and 30_000 <= closed["latency_ms"] <= expected_ms + 1
        wait_until(lambda: led.state is True and not toggling(led, 0.2), 3.0, "the LED steady")
    assert json.loads(alarms_file.read_text())["alarms"] == []


def test_a_damaged_alarm_file_is_set_aside_and_reported(broker: MosquittoBroker, tmp_path: Path,
                                                        mock_factory: Any) -> None:
    h = harness(broker, tmp_path, mock_factory, ShiftedClock())
    h.files.state_dir.mkdir(parents=True, exist_ok=True)
    (h.files.state_dir / "alarms.json").write_text('{"v": 1, "saved": "yesterday"')
    with h:
        event = h.wait_event(type="alarms.quarantined")
        assert event["prio"] == "critical" and "alarms.json" in event["data"]["reason"]
        assert h.agent is not None and h.agent.feedback.book.open_alarms == ()
    assert (h.files.state_dir / "alarms.json.bad-1").read_text().startswith('{"v": 1')

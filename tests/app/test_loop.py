"""AgentLoop on a plain-number clock: one turn at a time, no threads, no sleeps."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.record.counters import Counters
from agent.app.loop import AgentLoop, Stop
from agent.app.messages import CallMsg, CommandMsg, DeliveredMsg, EdgeMsg, StopMsg
from agent.app.sensors import Sensors
from agent.outbox.store import Outbox
from agent.record.recorder import Clocks, Recorder
from agent.record.signing import Signer
from drivers.door import DoorContact
from drivers.sos import SosButton


class Pin:
    """A pin level the test sets; what EdgeInput.read() would return."""

    def __init__(self, level: bool = False) -> None:
        self.level = level

    def read(self) -> bool:
        return self.level


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _recorder(tmp_path: Path, clock: "Clock", *, synced: bool) -> Tuple[Recorder, Outbox, Counters]:
    """A real Recorder on a real outbox and counters, its wall clock following ``clock``."""
    outbox = Outbox.open(tmp_path / "outbox.sqlite3")
    counters = Counters(tmp_path / "state")
    recorder = Recorder(device_id="gw-1", topic_prefix="homecare/gw-1",
                        signer=Signer("EdDSA", Ed25519PrivateKey.generate()), counters=counters,
                        outbox=outbox, clocks=Clocks(wall_of=lambda at: 1.8e9 + at,
                                                     now_epoch=lambda: 1.8e9 + clock.now,
                                                     synced=lambda: synced))
    return recorder, outbox, counters


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Dict[str, object]]:
    clock = Clock()
    recorder, outbox, counters = _recorder(tmp_path, clock, synced=False)
    pins = {"sos": Pin(), "door": Pin()}
    sensors = Sensors({"sos": SosButton("sos"), "door": DoorContact("door")}, pins)
    loop = AgentLoop(sensors=sensors, recorder=recorder, clock=clock, wall=lambda: 1.8e9 + clock.now,
                     synced=lambda: False, heartbeat_s=300, status=lambda: {"connected": False})
    yield {"loop": loop, "clock": clock, "pins": pins, "outbox": outbox}
    outbox.close()
    counters.close()


def types(outbox: Outbox) -> List[str]:
    return [r.type for r in sorted(outbox.next_batch(1000), key=lambda r: r.seq)]


def test_start_reports_the_agent_then_each_sensor_once_its_window_closed(rig) -> None:  # type: ignore[no-untyped-def]
    loop, clock, outbox = rig["loop"], rig["clock"], rig["outbox"]
    loop.start()
    assert types(outbox) == ["agent.started"]
    assert loop.next_deadline() == pytest.approx(100.03)        # SOS's 30 ms window
    clock.now = 101.0
    loop.turn([])
    assert types(outbox) == ["agent.started", "sos.released", "door.closed"]


def test_an_edge_goes_to_its_sensor_and_is_recorded_when_debounced(rig) -> None:  # type: ignore[no-untyped-def]
    loop, clock, outbox = rig["loop"], rig["clock"], rig["outbox"]
    loop.start()
    clock.now = 102.0
    loop.turn([EdgeMsg("sos", True, 101.5)])                  # stamped by the callback
    assert types(outbox)[-1] == "sos.pressed"
    pressed = outbox.next_batch(1)[0]
    assert pressed.critical and pressed.sensor == "sos"


def test_a_lost_edge_is_repaired_by_the_periodic_re_read(rig) -> None:  # type: ignore[no-untyped-def]
    loop, clock, pins, outbox = rig["loop"], rig["clock"], rig["pins"], rig["outbox"]
    loop.start()
    clock.now = 101.0
    loop.turn([])
    pins["door"].level = True                                     # opened, but no callback came
    clock.now = 102.5                                             # past the 2 s re-read
    loop.turn([])
    assert loop.repaired_edges == 1
    clock.now = 103.1                                             # + the 500 ms open window
    loop.turn([])
    assert types(outbox)[-1] == "door.opened"


def test_heartbeats_do_not_pile_up_while_offline(rig) -> None:  # type: ignore[no-untyped-def]
    loop, clock, outbox = rig["loop"], rig["clock"], rig["outbox"]
    loop.start()
    for k in range(1, 4):
        clock.now = 100.0 + 300 * k
        loop.turn([])
    assert types(outbox).count("agent.heartbeat") == 1            # only the latest is kept
    beat = [r for r in outbox.next_batch(1000) if r.type == "agent.heartbeat"][0]
    import jwt
    data = jwt.decode(beat.payload, options={"verify_signature": False})["data"]
    assert data["uptime_s"] == 900.0 and data["connected"] is False


def test_stop_ends_the_turn_and_edges_after_it_are_ignored(rig) -> None:  # type: ignore[no-untyped-def]
    loop, clock, outbox = rig["loop"], rig["clock"], rig["outbox"]
    loop.start()
    assert loop.turn([StopMsg(reload=True)]) == Stop(reload=True)
    loop.accepting_edges = False
    clock.now = 105.0
    loop.turn([EdgeMsg("sos", True, 104.0)])
    assert "sos.pressed" not in types(outbox)


def test_run_returns_on_request_stop_without_waiting_for_deadlines(rig) -> None:  # type: ignore[no-untyped-def]
    loop = rig["loop"]
    loop.start()
    loop.request_stop()
    assert loop.run() == Stop(reload=False)


class FailingOnce:
    """Wraps the outbox's put: the first call fails as a full disk would."""

    def __init__(self, put):  # type: ignore[no-untyped-def]
        self.put, self.failed = put, 0

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self.failed:
            self.failed += 1
            raise OSError(28, "No space left on device")
        return self.put(*args, **kwargs)


class Feedback:
    def __init__(self) -> None:
        self.calls: List[Tuple[str, object]] = []

    def recorded(self, events, row_ids) -> None:  # type: ignore[no-untyped-def]
        self.calls += [("recorded", e.type) for e in events]

    def delivered(self, row_ids) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("delivered", tuple(row_ids)))

    def stored(self, row_ids) -> None:  # type: ignore[no-untyped-def]
        self.calls.append(("stored", len(row_ids)))

    def storage(self, failed: bool) -> None:
        self.calls.append(("storage", failed))

    def advance(self, now: float) -> List[Any]:
        return []

    def next_deadline(self) -> None:
        return None


def test_a_batch_the_outbox_refuses_goes_out_from_memory_at_once_and_is_stored_later(rig) -> None:  # type: ignore[no-untyped-def]
    loop, clock, outbox = rig["loop"], rig["clock"], rig["outbox"]
    feedback = loop.feedback = Feedback()
    loop.start()
    clock.now = 101.0
    loop.turn([])
    outbox.put = FailingOnce(outbox.put)
    clock.now = 102.0
    loop.turn([EdgeMsg("sos", True, 101.5)])
    assert "sos.pressed" not in types(outbox)                    # the disk said no...
    held = [r for r in loop.recorder.source.next_batch(10, frozenset()) if r.row_id < 0]
    assert len(held) == 2                      # ...so memory has it (and storage_failed), now
    assert ("recorded", "sos.pressed") in feedback.calls         # the chirp does not wait
    assert ("storage", True) in feedback.calls                   # and the fault shows
    assert loop.next_deadline() <= 102.0 + 5.0                    # a retry is due
    clock.now = 107.0
    loop.turn([])
    assert types(outbox).count("sos.pressed") == 1               # stored once, not lost
    assert ("storage", False) in feedback.calls and ("stored", 3) in feedback.calls   # sos.released too (the pin re-read)
    assert loop.recorder.source.memory_depth() == 0


def test_a_failing_command_or_output_never_costs_a_sensor_event(rig) -> None:  # type: ignore[no-untyped-def]
    loop, clock, outbox = rig["loop"], rig["clock"], rig["outbox"]

    class Broken:
        def handle(self, payload: bytes, now: float) -> list:  # type: ignore[type-arg]
            raise RuntimeError("bug in the command path")

        def advance(self, now: float) -> list:  # type: ignore[type-arg]
            return []

        def next_deadline(self) -> None:
            return None

    loop.commands = Broken()
    loop.on_turn = lambda now: (_ for _ in ()).throw(OSError("status file"))
    loop.start()
    clock.now = 102.0
    loop.turn([CommandMsg(b"x"), EdgeMsg("sos", True, 101.5)])
    assert types(outbox)[-1] == "sos.pressed"


def test_while_storing_fails_no_deadline_is_in_the_past(rig) -> None:  # type: ignore[no-untyped-def]
    """An eviction report that cannot be made while degraded must not make the loop spin."""
    loop, clock, outbox = rig["loop"], rig["clock"], rig["outbox"]
    loop.start()
    recorder = loop.recorder
    recorder._evictions_maybe_pending, recorder._last_eviction_report = True, 0.0
    outbox.put = FailingOnce(outbox.put)
    clock.now = 102.0
    loop.turn([EdgeMsg("sos", True, 101.5)])
    assert recorder.storage_failed is not None
    outbox.put = lambda *a, **k: (_ for _ in ()).throw(OSError(30, "Read-only file system"))
    outbox.set_meta = outbox.put
    for now in (103.0, 110.0, 130.0):
        clock.now = now
        loop.turn([])
        assert loop.next_deadline() > now


def test_delivered_rows_reach_the_feedback_and_a_call_runs_after_the_turn_is_recorded(rig) -> None:  # type: ignore[no-untyped-def]
    loop, clock, outbox = rig["loop"], rig["clock"], rig["outbox"]
    feedback = loop.feedback = Feedback()
    loop.start()
    seen: List[List[str]] = []
    clock.now = 102.0
    loop.turn([CallMsg(lambda: seen.append(types(outbox))), EdgeMsg("sos", True, 101.5),
               DeliveredMsg((7, 8))])
    assert seen and seen[0][-1] == "sos.pressed"          # the call came after the recording
    assert ("delivered", (7, 8)) in feedback.calls


def test_a_message_of_another_type_is_refused_by_name(rig) -> None:  # type: ignore[no-untyped-def]
    loop = rig["loop"]
    loop.start()
    with pytest.raises(TypeError, match="EdgeMsg.*not tuple"):
        loop.turn([("edge", ("sos", True, 101.5))])


def test_an_unacknowledged_sos_raises_reminders_on_the_book_s_schedule(rig) -> None:  # type: ignore[no-untyped-def]
    """docs/spec.md §11: a new signed event naming its alarm, on the loop's clock."""
    import jwt
    from agent.alarms.book import AlarmBook, AlarmSchedule
    from agent.alarms.feedback import Feedback as RealFeedback
    loop, clock, outbox = rig["loop"], rig["clock"], rig["outbox"]
    feedback = loop.feedback = RealFeedback(
        book=AlarmBook(AlarmSchedule(ack_timeout_s=10, repeat_s=20, max_repeats=2)),
        clock=clock, wall=lambda: 1.8e9 + clock.now)
    loop.start()
    clock.now = 101.0
    loop.turn([EdgeMsg("sos", True, 100.5)])
    (alarm,) = feedback.book.open_alarms
    assert feedback.next_deadline() == pytest.approx(111.0)    # committed at 101, + 10 s
    quiet = AgentLoop(sensors=Sensors({}, {}), recorder=loop.recorder, clock=clock,
                      wall=loop.wall, synced=loop.synced, heartbeat_s=300, status=dict,
                      feedback=feedback)
    quiet._next_heartbeat = 401.0                              # as start() would set it
    assert quiet.next_deadline() == pytest.approx(111.0)       # the loop wakes for the book
    row = next(r for r in outbox.next_batch(1000) if r.type == "sos.pressed")
    loop.turn([DeliveredMsg((row.row_id,))])
    assert feedback.book.open_alarms[0].phase == "sent"
    reminders = []
    for t in (110.9, 111.0, 130.9, 131.0, 200.0, 400.0):
        clock.now = t
        loop.turn([])
        reminders = [jwt.decode(r.payload, options={"verify_signature": False})
                     for r in sorted(outbox.next_batch(1000), key=lambda r: r.seq)
                     if r.type == "alarm.unacknowledged"]
        assert len(reminders) == {110.9: 0, 111.0: 1, 130.9: 1}.get(t, 2), t
    assert [(c["sensor"], c["prio"], c["data"]) for c in reminders] == [
        ("sos", "critical", {"alarm_jti": alarm.jti, "alarm_type": "sos.pressed",
                             "phase": "sent", "age_s": 10, "repeat": 1}),
        ("sos", "critical", {"alarm_jti": alarm.jti, "alarm_type": "sos.pressed",
                             "phase": "sent", "age_s": 30, "repeat": 2})]
    assert feedback.book.open_alarms[0].reminder_jtis == tuple(c["jti"] for c in reminders)
    assert feedback.next_deadline() is None


def test_unsent_motion_is_activity_for_the_rules_and_is_not_recorded(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from agent.rules.inactivity import QuietRule
    from agent.rules.mode import ModeGate
    from agent.rules.settings import InactivityRuleSettings
    from drivers.motion import MotionSensor

    clock = Clock()
    recorder, outbox, counters = _recorder(tmp_path, clock, synced=True)
    settings = InactivityRuleSettings(mode="continuous", hours=0.5, warn_min=5)
    gate = ModeGate(lambda: [QuietRule(settings, ZoneInfo("Europe/Berlin"))])
    pir = Pin()
    sensors = Sensors({"hall": MotionSensor("hall")}, {"hall": pir})
    loop = AgentLoop(sensors=sensors, recorder=recorder, clock=clock, wall=lambda: 1.8e9 + clock.now,
                     synced=lambda: True, heartbeat_s=86400, status=lambda: {}, care=gate)
    try:
        loop.start()
        clock.now = 100.0 + 1700
        pir.level = True
        loop.turn([EdgeMsg("hall", True, clock.now)])
        clock.now += 0.2                     # past debounce_ms: motion accepted
        pir.level = False
        loop.turn([EdgeMsg("hall", False, clock.now)])   # still after hold_s
        clock.now = 100.0 + 1800 + 1         # the first episode's end: motion restarted it
        loop.turn([])
        assert types(outbox) == ["agent.started"]
        clock.now = 1800.2 + 1800 + 1
        loop.turn([])
        assert types(outbox) == ["agent.started", "care.inactivity_warning"]
    finally:
        outbox.close()
        counters.close()

"""Local feedback (agent.alarms.feedback): the alarm book fed from recorded events, LED
and buzzer following it, with fake outputs and a virtual clock.

The outputs here are plain recording objects standing in for drivers.outputs' thin
gpiozero wrappers (those are tested on mock pins in test_outputs.py and end to end in
tests/integration/test_commands_e2e.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import pytest

from agent.alarms.book import AlarmBook, AlarmSchedule
from agent.alarms.feedback import Feedback, Patterns, ts_epoch
from agent.alarms.store import AlarmStore


class FakeOutput:
    """Records what was asked of it; ``mode`` is the last: off, on or blink(...)."""

    def __init__(self) -> None:
        self.calls: List[Tuple[Any, ...]] = []
        self.closed = False

    def on(self) -> None:
        self.calls.append(("on",))

    def off(self) -> None:
        self.calls.append(("off",))

    def blink(self, on_time: float, off_time: float, n: Optional[int] = None) -> None:
        self.calls.append(("blink", on_time, off_time, n))

    def close(self) -> None:
        self.closed = True

    @property
    def mode(self) -> Tuple[Any, ...]:
        return self.calls[-1] if self.calls else ("off",)


T0 = 1_780_000_000.0          # the wall clock at now = 0
TS0 = "2026-05-28T20:26:40.000Z"  # T0 as an event's ts


@dataclass(frozen=True)
class Ev:
    """What the recorder hands on: the fields of agent.record.events.Event used here."""

    type: str
    jti: str
    sensor: str = "sos"
    critical: bool = True
    ts: str = TS0
    data: Mapping[str, Any] = field(default_factory=dict)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def wall(self) -> float:
        return T0 + self.now


class CountingStore:
    """A real AlarmStore in tmp_path that counts its saves."""

    def __init__(self, folder: Path) -> None:
        self.store = AlarmStore(folder)
        self.saves = 0

    def save(self, book: AlarmBook, *, now: float, wall: float) -> None:
        self.saves += 1
        self.store.save(book, now=now, wall=wall)


PATTERNS = Patterns(pending=(0.1, 0.2), sent=(0.5, 1.5), chirp=(0.05, 0.05, 4),
                    locate=(0.3, 0.3, 7), escalate=(0.4, 0.6, 5))


@pytest.fixture
def outs() -> Tuple[FakeOutput, FakeOutput, Feedback]:
    buzzer, led = FakeOutput(), FakeOutput()
    return buzzer, led, Feedback(buzzer=buzzer, led=led, patterns=PATTERNS)


def test_sos_chirps_and_blinks_pending_then_sent_then_steady_and_silent(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.recorded([Ev("agent.started", "a"), Ev("sos.pressed", "s1")], {"a": 1, "s1": 2})
    assert fb.phase == "pending"
    assert buzzer.calls == [("blink", 0.05, 0.05, 4)]
    assert led.mode == ("blink", 0.1, 0.2, None)          # fast, until changed
    fb.delivered([1])                                       # another row: nothing changes
    assert fb.phase == "pending"
    fb.delivered([2])
    assert fb.phase == "sent" and led.mode == ("blink", 0.5, 1.5, None)
    fb.ack("s1")
    assert fb.phase == "acknowledged" and led.mode == ("on",)
    assert buzzer.mode == ("off",)


def test_ack_before_puback_goes_straight_to_steady(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.recorded([Ev("smoke.alarm", "k1")], {"k1": 9})
    fb.ack(None)
    assert fb.phase == "acknowledged" and led.mode == ("on",) and buzzer.mode == ("off",)
    fb.delivered([9])                                       # late PUBACK: stays steady
    assert fb.phase == "acknowledged" and led.mode == ("on",)


def test_ack_for_an_unknown_event_changes_nothing(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": 1})
    before = (list(buzzer.calls), list(led.calls))
    fb.ack("someone-elses-event")
    assert fb.phase == "pending" and (buzzer.calls, led.calls) == before


def test_ack_with_no_alarm_is_ignored(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.ack(None)
    assert fb.phase == "idle" and buzzer.calls == [] and led.calls == []


def test_two_alarms_led_steady_only_when_both_acknowledged(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": 1})
    fb.recorded([Ev("smoke.alarm", "k1")], {"k1": 2})
    assert len(buzzer.calls) == 2                            # each alarm chirps
    fb.delivered([1])
    assert fb.phase == "pending"                             # the smoke alarm is not sent yet
    fb.delivered([2])
    assert fb.phase == "sent"
    fb.ack("s1")
    assert fb.phase == "sent" and buzzer.mode == ("off",)   # smoke still open
    fb.ack("k1")
    assert fb.phase == "acknowledged" and led.mode == ("on",)


def test_new_alarm_after_acknowledged_blinks_again(outs: Any) -> None:
    _, led, fb = outs
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": 1})
    fb.ack(None)
    fb.recorded([Ev("sos.pressed", "s2")], {"s2": 2})
    assert fb.phase == "pending" and led.mode == ("blink", 0.1, 0.2, None)
    assert fb.snapshot() == {"phase": "pending", "alarm_jti": "s2", "open_alarms": 1,
                             "storage_failed": False,
                             "alarms": [{"jti": "s2", "type": "sos.pressed", "sensor": "sos",
                                         "phase": "pending", "ts": T0, "reminders": 0}]}


def test_alarm_without_a_row_id_stays_pending_until_ack(outs: Any) -> None:
    _, _, fb = outs
    fb.recorded([Ev("sos.pressed", "s1")], {})
    fb.delivered([1, 2, 3])
    assert fb.phase == "pending"
    fb.ack("s1")
    assert fb.phase == "acknowledged"


def test_non_alarm_events_do_not_touch_the_outputs(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.recorded([Ev("door.opened", "d"), Ev("sos.released", "r"),
                 Ev("care.activity_resumed", "c"),
                 Ev("tamper.opened", "t", critical=False)],        # during maintenance
                {"d": 1, "r": 2, "c": 3, "t": 4})
    fb.delivered([1, 2, 3, 4])
    assert fb.phase == "idle" and buzzer.calls == [] and led.calls == []


def test_locate_beeps_the_locate_pattern(outs: Any) -> None:
    buzzer, _, fb = outs
    fb.locate()
    assert buzzer.mode == ("blink", 0.3, 0.3, 7)


def test_without_outputs_the_phase_is_still_tracked() -> None:
    fb = Feedback()
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": 4})
    fb.delivered([4])
    assert fb.phase == "sent"
    fb.locate()
    fb.ack("s1")
    assert fb.phase == "acknowledged"
    fb.close()


def test_close_closes_both_outputs(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.close()
    assert buzzer.closed and led.closed


@pytest.mark.parametrize("kwargs", [
    {"pending": (0.0, 0.1)}, {"sent": (0.1, -1.0)}, {"sent": (0.1, float("nan"))},
    {"pending": (0.1, 61.0)}, {"pending": (0.1,)}, {"chirp": (0.1, 0.1, 0)},
    {"chirp": (0.1, 0.1)}, {"locate": (0.1, 0.1, 2.5)}, {"locate": (0.1, 0.1, True)},
    {"locate": (0.1, 0.1, 1001)}, {"escalate": (0.5, 0.5)}, {"escalate": (0.5, 0.5, 0)},
])
def test_patterns_validate_themselves(kwargs: Any) -> None:
    with pytest.raises(ValueError, match="pattern"):
        Patterns(**kwargs)


def test_storage_failure_sounds_the_fault_pattern_and_alarms_still_chirp_and_blink(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.storage(True)
    assert buzzer.mode == ("blink",) + PATTERNS.fault[:2] + (PATTERNS.fault[2],)
    assert led.mode == ("blink",) + PATTERNS.fault_led + (None,)     # idle: the fault shows
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": -3})                # kept in memory
    assert buzzer.mode == ("blink", 0.05, 0.05, 4) and led.mode == ("blink", 0.1, 0.2, None)
    fb.delivered([-3])                                                # PUBACK of the memory row
    assert fb.phase == "sent" and led.mode == ("blink", 0.5, 1.5, None)
    fb.ack(None)
    assert led.mode == ("on",)                                        # acknowledged wins
    assert fb.snapshot()["storage_failed"] is True
    fb.storage(False)
    assert fb.snapshot()["storage_failed"] is False and led.mode == ("on",)


def test_an_alarm_moved_from_memory_to_the_outbox_is_followed_under_its_new_row(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.storage(True)
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": -3})
    fb.storage(False)
    assert led.mode == ("blink", 0.1, 0.2, None)
    fb.stored({"s1": 42})
    fb.delivered([42])
    assert fb.phase == "sent"


def test_every_opening_type_counts_a_critical_tamper_too(outs: Any) -> None:
    _, led, fb = outs
    fb.recorded([Ev("care.night_door", "c", sensor="front_door"),
                 Ev("tamper.opened", "t", sensor="lid")], {"c": 1, "t": 2})
    assert [a.jti for a in fb.book.open_alarms] == ["c", "t"] and fb.phase == "pending"


def test_ack_returns_what_it_closed_with_the_latency_from_the_alarm_s_ts(outs: Any) -> None:
    buzzer, led, fb = outs
    clock = Clock()
    fb = Feedback(buzzer=buzzer, led=led, patterns=PATTERNS, wall=clock.wall)
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": 1})
    clock.now = 2.345
    assert [a.data() for a in fb.ack(None)] == [{"jti": "s1", "type": "sos.pressed",
                                                  "latency_ms": 2345}]
    assert fb.ack(None) == []                  # nothing left: an empty list


def test_reminders_play_escalate_and_an_ack_naming_one_closes_the_alarm(outs: Any) -> None:
    buzzer, led, _ = outs
    clock = Clock()
    fb = Feedback(buzzer=buzzer, led=led, patterns=PATTERNS, clock=lambda: clock.now,
                  wall=clock.wall,
                  book=AlarmBook(AlarmSchedule(ack_timeout_s=10, repeat_s=10, max_repeats=2)))
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": 1})
    assert fb.next_deadline() == 10
    assert fb.advance(9.9) == []
    due = fb.advance(10.0)
    assert [r.data() for r in due] == [{"alarm_jti": "s1", "alarm_type": "sos.pressed",
                                        "phase": "pending", "age_s": 0, "repeat": 1}]
    assert buzzer.mode == ("blink",) + PATTERNS.escalate
    fb.recorded([Ev("alarm.unacknowledged", "r1", data=due[0].data())], {"r1": 2})
    assert fb.book.open_alarms[0].reminder_jtis == ("r1",)
    assert fb.ack("r1")[0].jti == "s1"
    assert fb.phase == "acknowledged" and buzzer.mode == ("off",) and fb.next_deadline() is None


def test_each_change_is_saved_once_and_a_restart_shows_the_alarm_again(tmp_path: Path) -> None:
    store, clock = CountingStore(tmp_path), Clock()
    fb = Feedback(store=store, clock=lambda: clock.now, wall=clock.wall)
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": 7})
    fb.recorded([Ev("door.opened", "d")], {"d": 8})          # no change: no save
    assert store.saves == 1
    fb.delivered([7])
    assert store.saves == 2
    fb.delivered([7])                                        # a second PUBACK: nothing new
    assert store.saves == 2
    clock.now = 50.0                                         # then the power goes
    led = FakeOutput()
    book, problem = AlarmStore(tmp_path).load(AlarmSchedule(), now=0.0, wall=clock.wall())
    after = Feedback(led=led, patterns=PATTERNS, book=book)
    assert problem is None and after.phase == "sent" and led.mode == ("blink", 0.5, 1.5, None)
    assert book.next_deadline() == 120 - 50                  # the original schedule


def test_a_saved_outbox_row_lets_a_puback_after_a_restart_mark_it_sent(tmp_path: Path) -> None:
    clock = Clock()
    fb = Feedback(store=CountingStore(tmp_path), wall=clock.wall)
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": 7})
    book, _ = AlarmStore(tmp_path).load(AlarmSchedule(), now=0.0, wall=clock.wall())
    after = Feedback(book=book)
    assert after.phase == "pending"
    after.delivered([7])
    assert after.phase == "sent"


def test_a_memory_row_is_not_saved_as_a_row(tmp_path: Path) -> None:
    clock = Clock()
    fb = Feedback(store=CountingStore(tmp_path), wall=clock.wall)
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": -3})
    book, _ = AlarmStore(tmp_path).load(AlarmSchedule(), now=0.0, wall=clock.wall())
    assert book.open_alarms[0].row is None


class FailingStore:
    def save(self, book: AlarmBook, *, now: float, wall: float) -> None:
        raise OSError(30, "Read-only file system")


def test_a_save_that_fails_keeps_the_alarm_and_the_led(outs: Any) -> None:
    buzzer, led, _ = outs
    fb = Feedback(buzzer=buzzer, led=led, patterns=PATTERNS, store=FailingStore())
    fb.recorded([Ev("sos.pressed", "s1")], {"s1": 1})
    assert fb.phase == "pending" and led.mode == ("blink", 0.1, 0.2, None)


def test_ts_epoch_reads_an_event_ts() -> None:
    assert ts_epoch(TS0) == T0
    assert ts_epoch("2026-05-28T20:26:40.250Z") == T0 + 0.25


def test_the_warn_pattern_lasts_until_the_warning_is_cancelled_or_raised(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.recorded([Ev("care.inactivity_warning", "w1", sensor="agent", critical=False)], {"w1": 1})
    assert buzzer.mode == ("blink", *PATTERNS.warn[:2], None) and fb.phase == "idle"
    fb.recorded([Ev("care.inactivity_cancelled", "c1", sensor="agent", critical=False)], {"c1": 2})
    assert buzzer.mode == ("off",) and fb.phase == "idle"
    fb.recorded([Ev("care.inactivity_warning", "w2", sensor="agent", critical=False)], {"w2": 3})
    fb.recorded([Ev("care.inactivity", "i1", sensor="agent")], {"i1": 4})
    assert buzzer.mode == ("blink", *PATTERNS.chirp) and fb.phase == "pending"

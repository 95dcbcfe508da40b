"""Local feedback (agent.alarms.feedback): LED and buzzer follow the alarm, with fake outputs.

The outputs here are plain recording objects standing in for drivers.outputs' thin
gpiozero wrappers (those are tested on mock pins in test_outputs.py and end to end in
tests/integration/test_commands_e2e.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Optional, Tuple

import pytest

from agent.alarms.feedback import Feedback, Patterns


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


@dataclass(frozen=True)
class Ev:
    type: str
    jti: str


PATTERNS = Patterns(pending=(0.1, 0.2), sent=(0.5, 1.5), chirp=(0.05, 0.05, 4),
                    locate=(0.3, 0.3, 7))


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
                             "storage_failed": False}


def test_alarm_without_a_row_id_stays_pending_until_ack(outs: Any) -> None:
    _, _, fb = outs
    fb.recorded([Ev("sos.pressed", "s1")], {})
    fb.delivered([1, 2, 3])
    assert fb.phase == "pending"
    fb.ack("s1")
    assert fb.phase == "acknowledged"


def test_non_alarm_events_do_not_touch_the_outputs(outs: Any) -> None:
    buzzer, led, fb = outs
    fb.recorded([Ev("door.opened", "d"), Ev("sos.released", "r"), Ev("care.night_door", "c")],
                {"d": 1, "r": 2, "c": 3})
    fb.delivered([1, 2, 3])
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
    {"locate": (0.1, 0.1, 1001)},
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

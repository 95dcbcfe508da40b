"""The alarm book (agent/alarms/book.py) on a virtual clock: plain numbers, no sleeping
(docs/spec.md §11)."""
from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import List

import pytest

from agent.alarms.book import AlarmBook, AlarmSchedule, Reminder
from agent.alarms.store import AlarmStore

T0 = 1_780_000_000.0      # a wall time; `now` (monotonic) starts at 0 in these tests
SCHEDULE = AlarmSchedule(ack_timeout_s=120, repeat_s=300, max_repeats=3)


def book_with_sos(jti: str = "a1", at: float = 0.0) -> AlarmBook:
    book = AlarmBook(SCHEDULE)
    book.opened(jti=jti, type="sos.pressed", sensor="sos", ts_wall=T0 + at, now=at, wall=T0 + at)
    return book


def reminders_until(book: AlarmBook, end: float, step: float = 1.0) -> List[Reminder]:
    out: List[Reminder] = []
    t = 0.0
    while t <= end:
        out += book.advance(now=t, wall=T0 + t)
        t += step
    return out


def test_reminders_follow_the_schedule_and_stop_at_max_repeats() -> None:
    book = book_with_sos()
    got = reminders_until(book, 5000)
    assert [(r.repeat, r.age_s) for r in got] == [(1, 120), (2, 420), (3, 720)]
    assert {r.alarm_jti for r in got} == {"a1"} and got[0].data()["phase"] == "pending"
    assert book.next_deadline() is None and [a.jti for a in book.open_alarms] == ["a1"]


def test_a_late_loop_does_not_shift_the_schedule() -> None:
    book = book_with_sos()
    assert [r.repeat for r in book.advance(now=130, wall=T0 + 130)] == [1]
    assert book.next_deadline() == 420


def test_no_reminders_with_max_repeats_zero_but_the_alarm_stays_open() -> None:
    book = AlarmBook(AlarmSchedule(max_repeats=0))
    book.opened(jti="a", type="smoke.alarm", sensor="k", ts_wall=T0, now=0, wall=T0)
    assert book.next_deadline() is None and book.led_phase() == "pending"


def test_phases_and_led() -> None:
    book = book_with_sos()
    assert book.led_phase() == "pending"
    book.delivered("a1")
    assert book.open_alarms[0].phase == "sent" and book.led_phase() == "sent"
    book.opened(jti="b2", type="smoke.alarm", sensor="k", ts_wall=T0 + 5, now=5, wall=T0 + 5)
    assert book.led_phase() == "pending"          # the least advanced open alarm wins
    closed = book.acknowledge(None, wall=T0 + 10)
    assert [(c.jti, c.latency_ms) for c in closed] == [("a1", 10_000), ("b2", 5_000)]
    assert book.led_phase() == "acknowledged" and book.open_alarms == ()


def test_ack_by_reminder_jti_closes_its_alarm_and_no_more_reminders_come() -> None:
    book = book_with_sos()
    (r,) = book.advance(now=120, wall=T0 + 120)
    book.reminder_made(r.alarm_jti, "rem-1")
    (c,) = book.acknowledge("rem-1", wall=T0 + 121.5)
    assert (c.jti, c.type, c.latency_ms) == ("a1", "sos.pressed", 121_500)
    assert reminders_until(book, 5000) == [] and book.last_ack_latency_ms == 121_500


def test_ack_naming_something_else_closes_nothing() -> None:
    book = book_with_sos()
    assert book.acknowledge("someone-else", wall=T0 + 1) == []
    assert book.led_phase() == "pending"
    assert AlarmBook(SCHEDULE).acknowledge(None, wall=T0) == []


def test_arc_ack_that_closes_alarms() -> None:
    book = book_with_sos()
    (c,) = book.delivered("a1", closes=True, wall=T0 + 2)
    assert c.latency_ms == 2000 and book.open_alarms == ()


def test_changes_reports_each_change_once() -> None:
    book = AlarmBook(SCHEDULE)
    assert not book.changes()
    book.opened(jti="a", type="sos.pressed", sensor="s", ts_wall=T0, now=0, wall=T0)
    assert book.changes() and not book.changes()
    book.delivered("a")
    assert book.changes()
    book.delivered("a")                            # a second PUBACK changes nothing
    assert not book.changes()


@pytest.mark.parametrize("wall_at_boot, expected_due", [
    (T0 + 300, 120.0),        # clock right, 100 s of downtime: the original time (T0 + 420)
    (T0 + 5000, 0.0),         # clock right, long downtime: overdue, at once
    (T0 - 86400, 220.0),      # clock a day behind: counted from the time saved (T0 + 200)
])
def test_restore_keeps_the_original_schedule_and_a_stale_clock_never_delays(
        wall_at_boot: float, expected_due: float) -> None:
    book = book_with_sos()
    book.advance(now=120, wall=T0 + 120)           # reminder 1 raised, the next due at T0 + 420
    saved = book.to_data(now=200, wall=T0 + 200)
    # reboot: monotonic time starts again from 0
    again = AlarmBook.restore(json.loads(json.dumps(saved)), SCHEDULE, now=0, wall=wall_at_boot)
    assert again.open_alarms == book.open_alarms
    assert again.next_deadline() == pytest.approx(expected_due)
    (r,) = again.advance(now=expected_due, wall=wall_at_boot + expected_due)
    assert (r.repeat, r.alarm_jti) == (2, "a1")


@pytest.mark.parametrize("data", [
    {}, {"v": 2}, {"v": 1, "saved": "x", "alarms": []}, {"v": 1, "saved": 1, "alarms": {}},
    {"v": 1, "saved": 1, "alarms": [{"jti": "a"}]},
    {"v": 1, "saved": 1, "alarms": [{"jti": "a", "type": "t", "sensor": "s", "phase": "lost",
                                       "ts": 1, "committed": 1}]},
])
def test_restore_refuses_damaged_content(data: object) -> None:
    with pytest.raises(ValueError):
        AlarmBook.restore(data, SCHEDULE, now=0, wall=T0)  # type: ignore[arg-type]


def test_store_round_trip_and_damaged_file_set_aside(tmp_path: Path) -> None:
    store = AlarmStore(tmp_path)
    book, problem = store.load(SCHEDULE, now=0, wall=T0)
    assert book.open_alarms == () and problem is None
    book = book_with_sos()
    store.save(book, now=0, wall=T0)
    again, problem = store.load(SCHEDULE, now=0, wall=T0)
    assert problem is None and [a.jti for a in again.open_alarms] == ["a1"]
    (tmp_path / "alarms.json").write_bytes(b'{"v": 1, "saved": ')
    empty, problem = store.load(SCHEDULE, now=0, wall=T0)
    assert empty.open_alarms == () and problem and "alarms.json" in problem
    assert (tmp_path / "alarms.json.bad-1").exists() and not (tmp_path / "alarms.json").exists()


@pytest.mark.parametrize("field_name, value", [("ack_timeout_s", 9), ("repeat_s", 86401),
                                               ("max_repeats", 1001), ("max_repeats", True)])
def test_schedule_ranges(field_name: str, value: object) -> None:
    with pytest.raises(ValueError, match=field_name):
        AlarmSchedule(**{field_name: value})  # type: ignore[arg-type]


def test_the_book_is_sans_io() -> None:
    source = (Path(__file__).resolve().parents[2] / "agent" / "alarms" / "book.py").read_text()
    imported = {(n.module or "").split(".")[0] for n in ast.walk(ast.parse(source))
                if isinstance(n, ast.ImportFrom)}
    imported |= {a.name.split(".")[0] for n in ast.walk(ast.parse(source))
                 if isinstance(n, ast.Import) for a in n.names}
    assert imported <= {"__future__", "dataclasses", "typing"}

"""agent.record.events: the Event claims (docs/spec.md §4), make_event, ts formatting, ts_sync."""
from __future__ import annotations

import dataclasses
import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List

import pytest

from agent.record import events
from agent.record.events import CLAIM_NAMES, Event, EventError, clock_synchronised, format_ts, make_event


class FakeCounters:
    def __init__(self, boot: int = 3, start: int = 41) -> None:
        self.boot = boot
        self.handed: List[int] = []
        self._next = start

    def next_seq(self) -> int:
        self.handed.append(self._next)
        self._next += 1
        return self.handed[-1]


def good_fields(**overrides: Any) -> Dict[str, Any]:
    fields: Dict[str, Any] = dict(
        iss="gw-0001", jti="0b6b1b1e-4c1e-4f43-9d43-2b7a9f1c2d3e", seq=7, boot=2,
        iat=1795879214, ts="2026-11-28T14:07:51.123Z", ts_sync=True, type="sos.pressed",
        sensor="sos", prio="critical", data={"initial": True})
    fields.update(overrides)
    return fields


def make(**overrides: Any) -> Event:
    kwargs: Dict[str, Any] = dict(
        device_id="gw-0001", type="door.opened", sensor="front_door", critical=False,
        data={"state": "open"}, recognised_at=1795879214.123, counters=FakeCounters(),
        clock_synced=True, now_epoch=1795879215.9)
    kwargs.update(overrides)
    return make_event(**kwargs)


def test_make_event_fills_every_claim() -> None:
    counters = FakeCounters(boot=5, start=100)
    event = make(counters=counters)
    claims = event.claims()
    assert list(claims) == list(CLAIM_NAMES)
    assert claims["v"] == 1 and claims["iss"] == "gw-0001"
    assert uuid.UUID(claims["jti"]).version == 4
    assert (claims["seq"], claims["boot"]) == (100, 5)
    assert claims["iat"] == 1795879215 and isinstance(claims["iat"], int)
    assert claims["ts"] == "2026-11-28T15:20:14.123Z"
    assert claims["ts_sync"] is True
    assert (claims["type"], claims["sensor"], claims["prio"]) == ("door.opened", "front_door", "normal")
    assert claims["data"] == {"state": "open"}
    assert counters.handed == [100]


def test_critical_maps_to_prio_and_each_event_gets_a_new_jti() -> None:
    counters = FakeCounters()
    a = make(critical=True, counters=counters)
    b = make(critical=True, counters=counters)
    assert a.prio == b.prio == "critical" and a.critical
    assert a.jti != b.jti
    assert b.seq == a.seq + 1


def test_recognised_at_accepts_aware_datetime_in_any_zone() -> None:
    moment = datetime(2026, 11, 28, 22, 7, 51, 123999, tzinfo=timezone(timedelta(hours=8)))
    assert make(recognised_at=moment).ts == "2026-11-28T14:07:51.123Z"


@pytest.mark.parametrize("when, expected", [
    (0, "1970-01-01T00:00:00.000Z"),
    (1795879214.123, "2026-11-28T15:20:14.123Z"),
    (1795879214.9999, "2026-11-28T15:20:14.999Z"),   # truncated, never rounded into the next second
    (1795879214.0005, "2026-11-28T15:20:14.000Z"),
])
def test_format_ts_milliseconds_utc(when: float, expected: str) -> None:
    assert format_ts(when) == expected


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(EventError, match="no time zone"):
        format_ts(datetime(2026, 11, 28, 14, 7, 51))


def test_bad_arguments_do_not_use_up_a_seq() -> None:
    counters = FakeCounters()
    for bad in (dict(type="Sos pressed"), dict(sensor="front door"), dict(device_id=""),
                dict(data={"x": float("nan")}), dict(data={1: "x"}), dict(critical=1),
                dict(now_epoch=-1.0), dict(data={"when": datetime.now(timezone.utc)})):
        with pytest.raises(EventError):
            make(counters=counters, **bad)
    assert counters.handed == []


def test_event_is_immutable_and_data_deep_frozen() -> None:
    source: Dict[str, Any] = {"nested": {"list": [1, 2]}, "n": 1}
    event = make(data=source)
    source["nested"]["list"].append(3)           # the caller's dict is not shared
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.seq = 99  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.data["n"] = 2  # type: ignore[index]
    claims = event.claims()
    assert claims["data"] == {"nested": {"list": [1, 2]}, "n": 1}
    claims["data"]["n"] = 5                      # claims() is a fresh copy
    assert event.claims()["data"]["n"] == 1
    assert hash(event) == hash(dataclasses.replace(event))


@pytest.mark.parametrize("claim, value", [
    ("v", 2), ("v", True), ("iss", "gw/1"), ("jti", "not-a-uuid"),
    ("jti", "0B6B1B1E-4C1E-4F43-9D43-2B7A9F1C2D3E"), ("seq", 0), ("seq", True), ("seq", 1.0),
    ("boot", 0), ("iat", -1), ("iat", 1.5), ("ts", "2026-11-28T14:07:51Z"),
    ("ts", "2026-11-28T14:07:51.123+00:00"), ("ts", "2026-02-30T14:07:51.123Z"),
    ("ts_sync", 1), ("type", "sos"), ("type", "SOS.pressed"), ("sensor", ""),
    ("prio", "high"), ("data", [1]),
])
def test_every_claim_is_validated(claim: str, value: Any) -> None:
    with pytest.raises(EventError):
        Event(**good_fields(**{claim: value}))


def test_from_claims_round_trip_and_exact_claim_set() -> None:
    event = Event(**good_fields())
    assert Event.from_claims(json.loads(json.dumps(event.claims()))) == event
    extra = dict(event.claims(), exp=1)
    with pytest.raises(EventError, match="unknown claim"):
        Event.from_claims(extra)
    missing = event.claims()
    del missing["ts_sync"]
    with pytest.raises(EventError, match="missing claim"):
        Event.from_claims(missing)


def test_clock_synchronised_marker_file(tmp_path: Path) -> None:
    marker = tmp_path / "synchronized"
    assert clock_synchronised(marker=str(marker), use_adjtimex=False) is False
    marker.touch()
    assert clock_synchronised(marker=str(marker), use_adjtimex=False) is True


def test_clock_synchronised_follows_adjtimex_state(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    missing = str(tmp_path / "none")
    monkeypatch.setattr(events, "_adjtimex_state", lambda: 5)      # TIME_ERROR: unsynchronised
    assert clock_synchronised(marker=missing) is False
    monkeypatch.setattr(events, "_adjtimex_state", lambda: 0)      # TIME_OK
    assert clock_synchronised(marker=missing) is True
    monkeypatch.setattr(events, "_adjtimex_state", lambda: None)   # unknown
    assert clock_synchronised(marker=missing) is False


def test_real_adjtimex_answers_a_clock_state() -> None:
    state = events._adjtimex_state()
    assert state is None or 0 <= state <= 5
    assert isinstance(clock_synchronised(marker=None), bool)
    assert os.path.exists(events.TIMESYNC_MARKER) <= clock_synchronised()

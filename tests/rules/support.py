"""Shared by the care-rule tests: a virtual clock pair and a stand-in sensor event."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, List, Mapping, Sequence, Tuple
from zoneinfo import ZoneInfo

from agent.rules.care import CareEvent

BERLIN = ZoneInfo("Europe/Berlin")
MINUTE, HOUR = 60.0, 3600.0


@dataclass(frozen=True)
class Ev:
    """Stands in for drivers.events.SensorEvent (only what the rules read)."""

    type: str
    sensor: str = "front_door"
    data: Mapping[str, Any] = field(default_factory=dict)


OPENED = Ev("door.opened", data={"state": "open"})
CLOSED = Ev("door.closed", data={"state": "closed"})
MOTION = Ev("motion.detected", sensor="hall", data={"state": "motion"})


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
          tz: tzinfo = BERLIN, fold: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=tz, fold=fold).timestamp()


def local(wall: float, tz: tzinfo = BERLIN) -> str:
    return datetime.fromtimestamp(wall, tz).isoformat(timespec="seconds")


class Clock:
    """Monotonic and wall time advancing together; the wall may jump (NTP sync)."""

    def __init__(self, wall: float, mono: float = 1000.0) -> None:
        self.mono, self.wall, self.synced = mono, wall, True

    def tick(self, seconds: float) -> "Clock":
        self.mono += seconds
        self.wall += seconds
        return self

    def to_wall(self, wall: float) -> "Clock":
        """Advance both clocks until the wall reads ``wall``."""
        return self.tick(wall - self.wall)

    def wall_of(self, mono: float) -> float:
        return mono + (self.wall - self.mono)

    def args(self) -> Tuple[float, float, bool]:
        return self.mono, self.wall, self.synced


def types(events: Sequence[CareEvent]) -> List[str]:
    return [e.type for e in events]


def run_until(rule: Any, clock: Clock, wall: float) -> List[CareEvent]:
    """Advance ``rule`` at each of its deadlines (as the loop does) until the wall reads ``wall``."""
    out: List[CareEvent] = []
    target = clock.mono + (wall - clock.wall)
    for _ in range(10_000):
        due = rule.next_deadline()
        if due is None or due > target:
            break
        clock.tick(max(0.0, due - clock.mono))
        out += rule.advance(*clock.args())
    clock.tick(target - clock.mono)
    out += rule.advance(*clock.args())
    return out

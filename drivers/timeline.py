"""Timelines: scripted sensor levels for ``simulate``, ``demo`` and tests (docs/spec.md §8).

A timeline file is a YAML list; times are seconds from the start::

    - {at: 0.0, sensor: front_door, level: inactive}
    - {at: 1.0, sensor: sos, level: active}
    - {at: 2.5, sensor: sos, level: inactive}

``level`` is logical; :class:`TimelineDriver` turns it into the pin level the wiring
gives (``active: low`` -> active is a low pin) and drives gpiozero mock pins at the
right moment of a :class:`VirtualClock`, which runs ``speed`` times faster than the
wall clock. Entries at ``at: 0`` are the levels present at start-up; sensors the
timeline never names start inactive.

A Form C smoke sensor (``pin_nc``) is driven as its relay: an entry for
``kitchen_smoke`` moves both contacts (NC always the opposite of NO, as a healthy
changeover does), and an entry for ``kitchen_smoke.nc`` moves the NC contact alone,
which is how a timeline makes a wiring fault (``level`` of the NC contact is logical
too: inactive = its pin at the level that is not ``active:``). Both contacts read the
same, e.g. ``{sensor: kitchen_smoke.nc, level: inactive}`` on a quiet detector, is a
cut common wire (both pins high with ``active: low``).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Union

import yaml

LEVELS = {"active": True, "inactive": False}


class TimelineError(ValueError):
    """A timeline file is wrong; the message names ``file:line`` and the entry."""


@dataclass(frozen=True)
class TimelineEntry:
    at: float          # seconds from the start
    sensor: str
    level: bool        # logical: True = active
    line: int = 0      # where it was written (for messages)


def parse_timeline(text: str, source: str = "<timeline>",
                   sensors: Optional[Sequence[str]] = None) -> List[TimelineEntry]:
    """Parse and check a timeline; every problem is reported at once."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise TimelineError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if node is None or not isinstance(node, yaml.SequenceNode):
        raise TimelineError(f"{source}: a timeline is a YAML list of {{at, sensor, level}} entries")
    problems: List[str] = []
    entries: List[TimelineEntry] = []
    loaded = yaml.safe_load(text)
    for index, (item_node, item) in enumerate(zip(node.value, loaded)):
        where = f"{source}:{item_node.start_mark.line + 1}: entry {index + 1}"
        if not isinstance(item, dict) or set(item) != {"at", "sensor", "level"}:
            problems.append(f"{where}: needs exactly the keys at, sensor, level")
            continue
        at, sensor, level = item["at"], item["sensor"], item["level"]
        if isinstance(at, bool) or not isinstance(at, (int, float)) or at < 0:
            problems.append(f"{where}: at: {at!r} is not a number of seconds >= 0")
            continue
        if sensors is not None and sensor not in sensors:
            problems.append(f"{where}: sensor: {sensor!r} is not in the config "
                            f"(sensors: {', '.join(sensors)})")
            continue
        if level not in LEVELS:
            problems.append(f"{where}: level: {level!r} must be active or inactive")
            continue
        entries.append(TimelineEntry(float(at), str(sensor), LEVELS[level],
                                     item_node.start_mark.line + 1))
    if problems:
        raise TimelineError("\n".join(problems))
    return sorted(entries, key=lambda e: e.at)   # stable: same-time entries keep file order


def load_timeline(path: Union[str, Path], sensors: Optional[Sequence[str]] = None) -> List[TimelineEntry]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise TimelineError(f"{p}: cannot read the timeline ({exc.strerror})") from None
    return parse_timeline(text, str(p), sensors)


class VirtualClock:
    """Timeline time: starts at 0 and runs ``speed`` times faster than the wall clock.

    ``mono()`` is what the agent's loop uses as its monotonic clock; ``wall()`` is the
    matching epoch time, so events' ``ts`` are the start time plus timeline time.

    ``cap``: the clock never reads past the next timeline entry until the driver has
    applied it, so an edge is stamped with exactly its ``at`` however late the driver
    thread woke (the clock pauses for that moment instead; it never runs backwards).
    """

    def __init__(self, speed: float = 1.0, *, start_wall: Optional[float] = None,
                 real_mono: Callable[[], float] = time.monotonic) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be above 0, not {speed!r}")
        self.speed = speed
        self._real = real_mono
        self._t0 = real_mono()
        self.start_wall = time.time() if start_wall is None else start_wall
        self.cap = math.inf

    def restart(self) -> None:
        """Timeline time 0 is now (call just before the agent starts)."""
        self._t0 = self._real()
        self.start_wall = time.time()

    def raw(self) -> float:
        return (self._real() - self._t0) * self.speed

    def mono(self) -> float:
        return min(self.raw(), self.cap)

    def wall(self) -> float:
        return self.start_wall + self.mono()

    def sleep_until(self, at: float, stop: Optional[threading.Event] = None) -> bool:
        """Wait until timeline time ``at``; False if ``stop`` was set first."""
        while True:
            remaining = (at - self.raw()) / self.speed
            if remaining <= 0:
                return True
            if stop is not None:
                if stop.wait(remaining):
                    return False
            else:
                time.sleep(remaining)


@dataclass(frozen=True)
class Wiring:
    """What the driver needs of one sensor: its mock pin and which pin level is active."""

    pin: Any               # a gpiozero MockPin
    active_high: bool
    #: the NC contact of this input (a Form C smoke's ``name.nc``): it follows as the opposite
    nc: Optional[str] = None


class TimelineDriver:
    """Drives mock pins through a timeline on a virtual clock."""

    def __init__(self, entries: Sequence[TimelineEntry], wiring: Mapping[str, Wiring],
                 clock: VirtualClock) -> None:
        self.entries = list(entries)
        self.wiring = dict(wiring)
        self.clock = clock
        self.applied = 0
        self.last_at: Dict[str, float] = {name: 0.0 for name in wiring}

    def drive(self, sensor: str, level: bool) -> None:
        w = self.wiring[sensor]
        if w.nc is not None:           # the relay changes over: NC first, as break-before-make
            self._set(self.wiring[w.nc], not level)
        self._set(w, level)

    @staticmethod
    def _set(w: Wiring, level: bool) -> None:
        if level == w.active_high:
            w.pin.drive_high()
        else:
            w.pin.drive_low()

    def apply_start_levels(self) -> None:
        """Levels present at start-up: the ``at: 0`` entries, every other sensor inactive
        (an NC contact the opposite of its NO contact, unless an entry says otherwise)."""
        start = {name: False for name in self.wiring}
        for entry in self.entries:
            if entry.at == 0:
                start[entry.sensor] = entry.level
        ncs = {w.nc: name for name, w in self.wiring.items() if w.nc is not None}
        for nc, no in ncs.items():
            if not any(e.at == 0 and e.sensor == nc for e in self.entries):
                start[nc] = not start[no]
        self.clock.cap = 0.0           # the agent starts at exactly timeline time 0
        for name, level in start.items():
            self._set(self.wiring[name], level)
        self.applied = sum(1 for e in self.entries if e.at == 0)

    def release_start(self) -> None:
        """The agent has read its start-up levels: let the clock run to the next entry."""
        self._hold_at_next()

    def run(self, stop: Optional[threading.Event] = None) -> bool:
        """Apply the remaining entries at their times; False if stopped early."""
        try:
            for entry in self.entries[self.applied:]:
                if not self.clock.sleep_until(entry.at, stop):
                    return False
                self.drive(entry.sensor, entry.level)   # stamped exactly entry.at
                self.last_at[entry.sensor] = entry.at
                self.applied += 1
                self._hold_at_next()
            return True
        finally:
            self.clock.cap = math.inf

    def _hold_at_next(self) -> None:
        rest = self.entries[self.applied:]
        self.clock.cap = rest[0].at if rest else math.inf

"""Care rules: turn the stream of sensor events into "closing the loop" alerts.

Theory of operation
-------------------
Two rules watch what the sensors report and raise their own events, every one of
them *critical* (docs/spec.md §3: "any event a care rule raises"):

``care.night_door``
    A door opens (``door.opened``, not a start-up report) while the local clock is
    inside the quiet-hours window (default 22:00-06:00). One event per opening,
    with ``sensor`` = the door's name.

``care.inactivity`` / ``care.activity_resumed``
    Nobody has opened or closed a door or touched the SOS button for ``hours``
    hours, counting **only time inside the daytime window** (default 07:00-22:00),
    so a resident who sleeps through the night is not reported at 07:00. One
    ``care.inactivity`` per quiet episode; the next activity raises
    ``care.activity_resumed`` and starts a new episode. Both with ``sensor`` =
    ``agent`` (they are about the home, not one sensor).

Two clocks, each for what it is good at:

* ``now`` -- monotonic seconds. Every duration is measured with it, so the wall
  clock jumping when NTP first synchronises (a Pi has no RTC and boots with
  fake-hwclock's last saved time) neither adds nor removes quiet time.
* ``wall`` -- epoch seconds, the system clock. Used only to decide *where in the
  local day* an instant falls (window membership), through the configured time
  zone (``zoneinfo``), so daylight-saving changes are handled by the tz database.

Between two calls the rules map the monotonic span onto the wall clock with the
offset ``wall - now`` of the *latest* call, i.e. the best clock known at the time.
Each monotonic second is counted exactly once, so a clock jump re-places the
window from then on and can never fire an alert twice: firing is a per-episode
flag that only activity clears.

Windows (``DailyWindow``): ``from`` is inclusive, ``to`` exclusive (22:00-06:00
contains 22:00:00 and 05:59:59, not 06:00:00). ``to`` earlier than ``from``
crosses midnight; ``from == to`` is the whole day. A boundary is the first
instant the local clock reads that time: inside an hour the clock skips (spring
forward) it falls at the jump; inside an hour the clock repeats (fall back) it
falls on the first pass. So a 22:00-06:00 window lasts 7 h on the spring-forward
night and 9 h on the fall-back night.

Unsynchronised clock: the rules still run with the best-known clock and say so in
``data.clock_synced`` -- for ``care.night_door`` the flag of that call, for the
inactivity events ``true`` only if every second counted in the episode was placed
with a synchronised clock. The care centre can weigh the alert; not raising it
would be worse for a resident who really did leave at night.

This module is sans-IO: no clock reads, threads, sockets or files. ``zoneinfo``
objects are passed in already loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, List, Mapping, Optional, Protocol

from agent.errors import ConfigError
from agent.rules.clock import DailyWindow, QuietCount, _parse_hhmm, _utc_ts

__all__ = [
    "ACTIVITY_TYPES",
    "MAX_HOURS",
    "CareEvent",
    "CareRules",
    "CareSettings",
    "DailyWindow",
    "InactivitySettings",
    "NightDoorSettings",
    "ObservedEvent",
]

#: Event types that show someone is up and about (start-up reports excluded).
ACTIVITY_TYPES = frozenset(
    {"door.opened", "door.closed", "sos.pressed", "sos.released", "sos.short_press"}
)

#: the most ``care.inactivity.hours``: one week of daytime hours; more is almost surely a typo
MAX_HOURS = 168.0


# --------------------------------------------------------------------------- settings


def _check_enabled(value: object, where: str) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}.enabled: {value!r} is not true or false",
                          hint="write enabled: true to switch the rule on, false to leave it off")


@dataclass(frozen=True)
class NightDoorSettings:
    """``care.night_door``: alert when a door opens during quiet hours.

    ``enabled`` -- off by default. ``from_`` / ``to`` -- local times "HH:MM"; the
    window starts at ``from_`` (inclusive) and ends at ``to`` (exclusive), crossing
    midnight when ``to`` is earlier. Default 22:00 to 06:00.
    """

    enabled: bool = False
    from_: str = "22:00"
    to: str = "06:00"

    def __post_init__(self) -> None:
        _check_enabled(self.enabled, "care.night_door")
        _parse_hhmm(self.from_, "care.night_door.from")
        _parse_hhmm(self.to, "care.night_door.to")


@dataclass(frozen=True)
class InactivitySettings:
    """``care.inactivity``: alert after ``hours`` of daytime without any activity.

    ``enabled`` -- off by default. ``hours`` -- daytime hours (counted only inside
    the window) without a door opening/closing or an SOS button touch; default 12,
    greater than 0 and at most 168. ``from_`` / ``to`` -- the daytime window, local
    "HH:MM", default 07:00 to 22:00; ``from_ == to`` counts all day.
    """

    enabled: bool = False
    hours: float = 12.0
    from_: str = "07:00"
    to: str = "22:00"

    def __post_init__(self) -> None:
        _check_enabled(self.enabled, "care.inactivity")
        if (isinstance(self.hours, bool) or not isinstance(self.hours, (int, float))
                or not 0 < self.hours <= MAX_HOURS):
            raise ConfigError(
                f"care.inactivity.hours: {self.hours!r} is out of range",
                hint=f"give the daytime hours without activity before an alert, "
                     f"a number above 0 and at most {MAX_HOURS:g} (e.g. 12)",
            )
        _parse_hhmm(self.from_, "care.inactivity.from")
        _parse_hhmm(self.to, "care.inactivity.to")


@dataclass(frozen=True)
class CareSettings:
    """The ``care:`` section of the config (docs/spec.md §10); both rules off by default."""

    night_door: NightDoorSettings = field(default_factory=NightDoorSettings)
    inactivity: InactivitySettings = field(default_factory=InactivitySettings)

    def __post_init__(self) -> None:
        n, i = NightDoorSettings, InactivitySettings   # the examples are the defaults
        if not isinstance(self.night_door, NightDoorSettings):
            raise ConfigError(f"care.night_door: {self.night_door!r} is not a night-door setting",
                              hint=f'write e.g. night_door: {{enabled: true, from: "{n.from_}", '
                                   f'to: "{n.to}"}}')
        if not isinstance(self.inactivity, InactivitySettings):
            raise ConfigError(f"care.inactivity: {self.inactivity!r} is not an inactivity setting",
                              hint=f'write e.g. inactivity: {{enabled: true, hours: {i.hours:g}, '
                                   f'from: "{i.from_}", to: "{i.to}"}}')


# --------------------------------------------------------------------------- events


class ObservedEvent(Protocol):
    """What the rules read from a sensor event (``drivers.events.SensorEvent`` fits)."""

    @property
    def type(self) -> str: ...

    @property
    def sensor(self) -> str: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class CareEvent:
    """An event a care rule raised; same shape as ``drivers.events.SensorEvent``.

    ``at`` is the monotonic time the rule recognised it (for ``care.inactivity``
    the instant the quiet time reached ``hours``, even if ``advance`` ran later).
    Always critical (docs/spec.md §3).
    """

    type: str
    sensor: str
    at: float
    data: Mapping[str, Any]
    critical: bool = True

    def __post_init__(self) -> None:
        if not self.type.startswith("care."):
            raise ValueError(f"care event type must start with 'care.', got {self.type!r}")
        if not self.sensor:
            raise ValueError("care event needs a sensor name ('agent' for the agent's own)")
        if not self.critical:
            raise ValueError("care events are critical (docs/spec.md §3)")
        object.__setattr__(self, "data", dict(self.data))


# --------------------------------------------------------------------------- rules


class CareRules:
    """The care rules of one home. Sans-IO: the agent's loop feeds it.

    Example (the loop)::

        care = CareRules(config.care, ZoneInfo(config.device.timezone))
        events += care.observe(sensor_event, now, wall, clock_synced)   # every sensor event
        events += care.advance(now, wall, clock_synced)                 # at care.next_deadline()

    ``now`` is ``time.monotonic()``, ``wall`` is ``time.time()``, ``clock_synced``
    whether the system clock is known to be synchronised. Call ``advance`` once
    at start-up: quiet time is counted from the first call (the agent does not
    know what happened before it started).
    """

    def __init__(self, settings: CareSettings, tz: tzinfo) -> None:
        self.settings = settings
        self.tz = tz
        night, quiet = settings.night_door, settings.inactivity
        self._night = DailyWindow(night.from_, night.to, tz)
        self._quiet = QuietCount(DailyWindow(quiet.from_, quiet.to, tz), quiet.hours)
        self._alerted = False  # care.inactivity sent for this episode

    def __repr__(self) -> str:
        return (f"CareRules(night_door={self.settings.night_door.enabled}, "
                f"inactivity={self.settings.inactivity.enabled}, alerted={self._alerted})")

    def observe(self, event: ObservedEvent, now: float, wall: float,
                clock_synced: bool) -> List[CareEvent]:
        """Feed one sensor event; returns the care events it (and time until ``now``) raise.

        Order: a ``care.inactivity`` that fell due before ``now``, then
        ``care.night_door``, then ``care.activity_resumed``.
        """
        out = self.advance(now, wall, clock_synced)
        if event.data.get("initial") is True:
            return out  # a start-up report says nothing about the resident
        if (event.type == "door.opened" and self.settings.night_door.enabled
                and self._night.contains(wall)):
            out.append(self._night_door(event, now, wall, clock_synced))
        if event.type in ACTIVITY_TYPES and self.settings.inactivity.enabled:
            out.extend(self._activity(event, now))
        return out

    def advance(self, now: float, wall: float, clock_synced: bool) -> List[CareEvent]:
        """Count quiet time up to ``now``; returns ``care.inactivity`` if it fell due."""
        if not self.settings.inactivity.enabled:
            return []
        due = self._quiet.advance(now, wall, clock_synced, watch=not self._alerted)
        if due is None:
            return []
        self._alerted = True
        return [self._inactivity(due)]

    def next_deadline(self) -> Optional[float]:
        """Monotonic time ``care.inactivity`` falls due if nothing else happens; else None."""
        if not self.settings.inactivity.enabled or self._alerted:
            return None
        return self._quiet.deadline()

    # ---- event builders

    def _night_door(self, event: ObservedEvent, now: float, wall: float,
                    clock_synced: bool) -> CareEvent:
        local = datetime.fromtimestamp(wall, self.tz)
        return CareEvent("care.night_door", event.sensor, now, {
            "door": event.sensor,
            "local_time": local.isoformat(timespec="seconds"),
            "window": self._night.label,
            "timezone": str(self.tz),
            "clock_synced": clock_synced,
        })

    def _inactivity(self, at: float) -> CareEvent:
        q = self._quiet
        return CareEvent("care.inactivity", "agent", at, {
            **q.facts(at), "counting_since": _utc_ts(q.since + q.offset)})

    def _activity(self, event: ObservedEvent, now: float) -> List[CareEvent]:
        out: List[CareEvent] = []
        if self._alerted:
            out.append(CareEvent("care.activity_resumed", "agent", now, {
                **self._quiet.facts(now), "quiet_hours": round(self._quiet.counted / 3600.0, 3),
                "sensor": event.sensor, "trigger": event.type}))
        self._quiet.restart(now)
        self._alerted = False
        return out

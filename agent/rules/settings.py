"""The settings of the version-2 inactivity rule (docs/spec.md §14.1), on their own so that
both of its modes' modules (:mod:`agent.rules.inactivity`, :mod:`agent.rules.checkin`)
take them without importing each other."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from agent.errors import ConfigError

from .care import MAX_HOURS
from .clock import _parse_hhmm
from .doors import DoorLeftOpenSettings, NightExitSettings

__all__ = ["MODES", "CareRulesV2", "InactivityRuleSettings"]

MODES = ("daytime", "continuous", "check_in")
_MIN_CONTINUOUS_H = 0.5  # docs/spec.md §14.1
_MAX_WARN_MIN = 120.0    # a warning longer than two hours is no longer a warning


def _number(value: object, lo: float, hi: float, where: str, hint: str) -> None:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not lo <= value <= hi):
        raise ConfigError(f"{where}: {value!r} is out of range", hint=hint)


@dataclass(frozen=True)
class InactivityRuleSettings:
    """``care.inactivity`` of version 2 (docs/spec.md §14.1).

    ``mode`` -- ``daytime`` (default), ``continuous`` or ``check_in``. ``hours`` -- quiet
    hours before an alert, default 12 (not used by ``check_in``; at least 0.5 in
    ``continuous``). ``from_`` / ``to`` -- local "HH:MM", default 07:00-22:00: the
    counting window (``daytime``) or the check-in window (``check_in``).
    ``warn_min`` -- minutes of warning before the alert, default 0 = no warning.
    """

    mode: str = "daytime"
    hours: float = 12.0
    from_: str = "07:00"
    to: str = "22:00"
    warn_min: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"care.inactivity.mode: {self.mode!r} is not a mode",
                              hint=f"write one of {', '.join(MODES)}")
        low = _MIN_CONTINUOUS_H if self.mode == "continuous" else 0.0
        hint = (f"give the quiet hours before an alert, above 0 and at most {MAX_HOURS:g} "
                f"(e.g. 12; in continuous mode at least {_MIN_CONTINUOUS_H:g})")
        _number(self.hours, low, MAX_HOURS, "care.inactivity.hours", hint)
        if self.hours == 0:
            raise ConfigError("care.inactivity.hours: 0 is out of range", hint=hint)
        _parse_hhmm(self.from_, "care.inactivity.from")
        _parse_hhmm(self.to, "care.inactivity.to")
        if self.mode == "check_in" and self.from_ == self.to:
            raise ConfigError("care.inactivity.to: a check-in window needs an end",
                              hint='give from and to different times, e.g. from: "07:00", to: "11:00"')
        _number(self.warn_min, 0.0, _MAX_WARN_MIN, "care.inactivity.warn_min",
                f"give the warning's minutes, 0 (no warning) to {_MAX_WARN_MIN:g} (e.g. 5)")


@dataclass(frozen=True)
class CareRulesV2:
    """The version-2 care rules the config switches on (docs/spec.md §14); None = off.

    ``inactivity`` is set only when ``care.inactivity`` is enabled *and* names a
    ``mode`` or a ``warn_min``: then it replaces care.py's own inactivity (a version-1
    file keeps the rule it had). ``door_left_open`` / ``night_exit``: their settings
    when enabled.
    """

    inactivity: Optional[InactivityRuleSettings] = None
    door_left_open: Optional[DoorLeftOpenSettings] = None
    night_exit: Optional[NightExitSettings] = None

    @property
    def any(self) -> bool:
        return any(x is not None for x in (self.inactivity, self.door_left_open, self.night_exit))

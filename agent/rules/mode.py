"""Away mode (docs/spec.md §14.3): while nobody is home the care rules stay silent.

Theory of operation
-------------------
:class:`ModeGate` stands between the loop and the care rules of the home
(inactivity, door left open, night door, night exit). ``home``: every call is passed
on. ``away``: the rules are dropped, so nothing is counted and nothing is raised.
Back to ``home``: a fresh set is built with the factory and started at that instant,
so a quiet episode, a door's open time or a night exit never spans the absence.

SOS, smoke, tamper, power and faults are not care rules and never pass through the
gate: away mode cannot silence them.

The gate keeps no file. The loop saves the mode (state_dir) on each change and passes
the saved one as ``mode=`` at start-up; ``agent.mode`` is the loop's event.
"""
from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Sequence

from .activity import Rule
from .care import CareEvent, ObservedEvent

__all__ = ["AWAY", "HOME", "MODES", "ModeGate", "parse_mode_args"]

HOME, AWAY = "home", "away"
MODES = (HOME, AWAY)


def parse_mode_args(args: Mapping[str, Any]) -> str:
    """The ``mode`` command's ``args`` -> ``"home"`` / ``"away"``; ValueError -> ``bad_args``."""
    if set(args) != {"mode"} or args["mode"] not in MODES:
        raise ValueError(f"args must be {{mode: away}} or {{mode: home}}, not {dict(args)!r}")
    return str(args["mode"])


class ModeGate:
    """The care rules, switched off while ``away`` (module docstring).

    Example (the loop)::

        gate = ModeGate(lambda: [inactivity_rule(...), DoorLeftOpenRule(...)], mode=saved)
        gate.advance(now, wall, synced)                    # at start-up, then at next_deadline()
        if gate.set_mode(parse_mode_args(args), now, wall, synced): save(gate.mode)
    """

    def __init__(self, make_rules: Callable[[], Sequence[Rule]], *, mode: str = HOME) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}; delete the saved mode file "
                             "to start at home")
        self._make = make_rules
        self.mode = mode
        self._rules: List[Rule] = list(make_rules()) if mode == HOME else []

    def __repr__(self) -> str:
        return f"ModeGate({self.mode}, rules={len(self._rules)})"

    @property
    def rules(self) -> List[Rule]:
        """The running rules (empty while away)."""
        return list(self._rules)

    def set_mode(self, mode: str, now: float, wall: float, clock_synced: bool) -> bool:
        """Switch to ``mode``; True if it changed. Going home starts fresh rules at ``now``."""
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        if mode == self.mode:
            return False
        self.mode = mode
        self._rules = list(self._make()) if mode == HOME else []
        for rule in self._rules:
            rule.advance(now, wall, clock_synced)  # counting starts now
        return True

    def observe(self, event: ObservedEvent, now: float, wall: float,
                clock_synced: bool) -> List[CareEvent]:
        return [e for r in self._rules for e in r.observe(event, now, wall, clock_synced)]

    def advance(self, now: float, wall: float, clock_synced: bool) -> List[CareEvent]:
        return [e for r in self._rules for e in r.advance(now, wall, clock_synced)]

    def next_deadline(self) -> Optional[float]:
        due = [d for d in (r.next_deadline() for r in self._rules) if d is not None]
        return min(due) if due else None

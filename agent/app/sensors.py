"""The sensors' state machines fed from their pins: what the loop and ``monitor`` share.

:class:`Sensors` starts each state machine from its pin's level, feeds it edges, advances
it to ``now``, and every ``reread_s`` reads every pin back: a level the state machine
never heard of is an edge the backend lost, repaired by feeding it as an edge now. It
owns no thread and reads no clock; whoever owns it (the agent's loop, or the ``monitor``
command) calls it from one thread with ``now``.

A Form C smoke sensor (docs/spec.md §13.2) has two pins: its own name for the NO
contact and ``{name}.nc`` (:data:`~agent.config.schema.NC_SUFFIX`) for the NC contact.
An edge of ``{name}.nc`` goes to the state machine's ``edge_nc``; the start and the
re-read read both. The NC contact has its own input name, not a flag on every edge:
the inputs, the reload's hand-over and the simulation's timeline already work per
name, so none of them needs a second kind of edge.

A state machine that raises is logged and skipped for that call, so one broken sensor
never costs the others their events.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Protocol, Tuple

from agent.config.schema import NC_SUFFIX
from drivers.events import SensorEvent

log = logging.getLogger("agent.app.loop")

#: how often every pin is read back, to repair an edge the backend lost
PIN_REREAD_S = 2.0


class StateMachine(Protocol):
    def start(self, level: bool, now: float) -> List[SensorEvent]: ...
    def edge(self, level: bool, now: float) -> List[SensorEvent]: ...
    def advance(self, now: float) -> List[SensorEvent]: ...
    def next_deadline(self) -> Optional[float]: ...
    @property
    def raw(self) -> bool: ...
    @property
    def state(self) -> str: ...


class FormC(Protocol):
    """What a supervised smoke sensor adds (drivers/smoke.py, ``supervised=True``)."""

    def start(self, level: bool, now: float, nc: Optional[bool] = None) -> List[SensorEvent]: ...
    def edge_nc(self, level: bool, now: float) -> List[SensorEvent]: ...
    @property
    def raw_nc(self) -> bool: ...


class PinReader(Protocol):
    def read(self) -> bool: ...


@dataclass(frozen=True)
class SensorState:
    """One sensor as its state machine sees it: debounced ``state`` and last ``raw`` level."""

    state: str
    raw: bool
    #: the NC contact's last raw level (Form C smoke); None = no NC contact
    raw_nc: Optional[bool] = None

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bool) or not isinstance(self.raw_nc, (bool, type(None))):
            raise ValueError(f"raw and raw_nc must be bool levels, got {self.raw!r}, {self.raw_nc!r}")


@dataclass(frozen=True)
class Repaired:
    """A pin read back at ``at`` at a level no edge had reported, and what that caused."""

    sensor: str
    level: bool
    at: float
    events: Tuple[SensorEvent, ...]


class Sensors:
    """State machines by sensor name, and the pins they listen to (module docstring)."""

    def __init__(self, machines: Mapping[str, StateMachine], pins: Mapping[str, PinReader], *,
                 reread_s: float = PIN_REREAD_S) -> None:
        if reread_s <= 0:
            raise ValueError(f"reread_s must be > 0 seconds, got {reread_s!r}")
        self._machines = dict(machines)
        self._pins = pins      # kept, not copied: the agent claims its pins after the loop exists
        self.reread_s = reread_s
        self._next_reread: Optional[float] = None
        #: pins read back at a level no edge had reported, since start
        self.repaired_edges = 0

    def start(self, now: float) -> List[SensorEvent]:
        """Read every pin and start its state machine there (their start-up reports)."""
        events: List[SensorEvent] = []
        for name, machine in self._machines.items():
            level = self._pins[name].read()
            nc = self._pins.get(name + NC_SUFFIX)
            if nc is None:
                events += machine.start(level, now)
            else:
                events += _form_c(machine).start(level, now, nc=nc.read())
        self._next_reread = now + self.reread_s
        return events

    def edge(self, sensor: str, level: bool, at: float) -> List[SensorEvent]:
        """Feed one edge (of ``{name}.nc``: the NC contact); an unknown input's is dropped."""
        machine = self._machines.get(sensor)
        if machine is not None:
            return _safely(f"sensor {sensor}", machine.edge, level, at)
        owner = self._nc_owner(sensor)
        if owner is None:
            return []
        return _safely(f"sensor {sensor}", _form_c(owner).edge_nc, level, at)

    def advance(self, now: float) -> List[SensorEvent]:
        events: List[SensorEvent] = []
        for name, machine in self._machines.items():
            events += _safely(f"sensor {name}", machine.advance, now)
        return events

    def reread_due(self, now: float) -> bool:
        return self._next_reread is not None and now >= self._next_reread

    def reread(self, now: float) -> List[Repaired]:
        """Read every pin back now; the next re-read is ``reread_s`` later."""
        self._next_reread = now + self.reread_s
        repaired: List[Repaired] = []
        for name, pin in self._pins.items():
            machine = self._machines.get(name)
            owner = self._nc_owner(name) if machine is None else None
            if owner is not None:
                known, feed = _form_c(owner).raw_nc, _form_c(owner).edge_nc
            elif machine is not None:
                known, feed = machine.raw, machine.edge
            else:
                continue
            level = pin.read()
            if level != known:
                self.repaired_edges += 1
                repaired.append(Repaired(name, level, now, tuple(feed(level, now))))
        return repaired

    def next_deadline(self) -> Optional[float]:
        """The earliest debounce window or timer to close, or the next re-read."""
        deadlines = [d for d in (m.next_deadline() for m in self._machines.values())
                     if d is not None]
        if self._next_reread is not None:
            deadlines.append(self._next_reread)
        return min(deadlines) if deadlines else None

    # --- read API: status, monitor, a reload's hand-over ---------------------------------------
    def drain_activity(self) -> List[SensorEvent]:
        """Motion the sensors did not send (docs/spec.md §14.4): for the care rules only."""
        out: List[SensorEvent] = []
        for machine in self._machines.values():
            drain = getattr(machine, "drain_activity", None)
            if drain is not None:
                out += drain()
        return out

    def names(self) -> List[str]:
        return list(self._machines)

    def state(self, sensor: str) -> SensorState:
        machine = self._machines[sensor]
        nc = _form_c(machine).raw_nc if sensor + NC_SUFFIX in self._pins else None
        return SensorState(machine.state, machine.raw, nc)

    def states(self) -> Dict[str, SensorState]:
        return {name: self.state(name) for name in self._machines}

    def power_blips(self) -> Optional[int]:
        """Power cuts too short to report, summed over the mains sensors since start
        (the heartbeat's ``power_blips``, docs/spec.md §13.1); None without a mains sensor."""
        counts = [int(getattr(m, "power_blips")) for m in self._machines.values()
                  if getattr(m, "kind", None) == "mains"]
        return sum(counts) if counts else None

    def _nc_owner(self, name: str) -> Optional[StateMachine]:
        """The smoke sensor whose NC contact the input ``name`` is, if it is one."""
        if not name.endswith(NC_SUFFIX) or name not in self._pins:
            return None
        return self._machines.get(name[:-len(NC_SUFFIX)])

    def machine(self, sensor: str) -> StateMachine:
        """The state machine itself: a reload carries it over to the next agent."""
        return self._machines[sensor]


def _form_c(machine: Any) -> FormC:
    """A machine with an NC pin (a Form C smoke sensor, or a reload's Resumed around one)."""
    return machine  # type: ignore[no-any-return]


def _safely(what: str, fn: Callable[..., List[SensorEvent]], *args: object) -> List[SensorEvent]:
    try:
        return fn(*args)
    except Exception:  # one failing sensor must not stop the loop or lose the others' events
        log.exception("%s failed; carrying on", what)
        return []

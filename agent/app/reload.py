"""A reload (SIGHUP) that loses no edge (docs/spec.md §9): the pins are never let go.

:func:`hand_over` (old agent, loop stopped) switches every input to *holding* its edges
and gives the pins whose wiring is unchanged, and the state machines of sensors whose
settings are unchanged, to the next agent's build; the old agent then closes (its outbox
and counters must be free before the new one opens them), and the new agent replays the
held edges, in order and with their own timestamps, into its loop. An edge during the
reload is late by the rebuild, never lost.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from agent.app.messages import Edge, Inbox
from agent.app.sensors import Sensors, StateMachine
from agent.config.model import SensorConfig
from drivers.events import SensorEvent
from drivers.pins import EdgeInput


class EdgeRelay:
    """The one sink of every input pin: forwards edges to a loop, or holds them.

    Between two agents of a reload there is no loop to take edges; the relay keeps them
    (in arrival order, each with its own timestamp) until the next loop is there. gpiozero
    calls it from its own threads, hence the lock; forwarding is one queue put.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sink: Optional[Callable[[Edge], None]] = None
        self._held: List[Edge] = []

    def __call__(self, edge: Edge) -> None:
        with self._lock:
            if self._sink is None:
                self._held.append(edge)
            else:
                self._sink(edge)

    def hold(self, earlier: List[Edge]) -> None:
        """Keep edges from now on; ``earlier`` ones (still queued for the old loop) go first."""
        with self._lock:
            self._sink = None
            self._held[:0] = earlier

    def forward_to(self, sink: Callable[[Edge], None]) -> int:
        """Hand the held edges to ``sink``, then forward; returns how many were held."""
        with self._lock:
            held, self._held = self._held, []
            for edge in held:
                sink(edge)
            self._sink = sink
            return len(held)


@dataclasses.dataclass
class PinHandover:
    """What a reloading agent gives the next one (see the module docstring)."""

    relay: EdgeRelay
    #: pins kept claimed, by sensor name (their wiring is unchanged)
    inputs: Dict[str, EdgeInput]
    #: state machines carried over, by sensor name (every setting unchanged)
    machines: Dict[str, StateMachine]
    #: the last level the old loop saw on each kept pin, and when: a new state machine on
    #: a kept pin starts from there, so that the held edges follow its start
    levels: Dict[str, bool]
    at: float

    def close(self) -> None:
        """Release the kept pins (the next agent could not be built)."""
        for pin in self.inputs.values():
            pin.close()
        self.inputs.clear()


class Resumed:
    """A state machine that is already running: the new loop's ``start()`` only collects
    what it reported at hand-over (nothing, for one carried over unchanged)."""

    def __init__(self, machine: StateMachine, reported: List[SensorEvent]) -> None:
        self.inner = machine
        self._reported = reported

    def start(self, level: bool, now: float, nc: Optional[bool] = None) -> List[SensorEvent]:
        out, self._reported = self._reported, []
        return out

    def edge(self, level: bool, now: float) -> List[SensorEvent]:
        return self.inner.edge(level, now)

    def advance(self, now: float) -> List[SensorEvent]:
        return self.inner.advance(now)

    def next_deadline(self) -> Optional[float]:
        return self.inner.next_deadline()

    @property
    def raw(self) -> bool:
        return self.inner.raw

    @property
    def state(self) -> str:
        return self.inner.state

    def __getattr__(self, name: str) -> Any:   # flapping, name, ... of the real machine
        return getattr(self.inner, name)


def _unwrapped(machine: StateMachine) -> StateMachine:
    return machine.inner if isinstance(machine, Resumed) else machine


def hand_over(*, relay: EdgeRelay, inbox: Inbox, inputs: Dict[str, EdgeInput], sensors: Sensors,
              before: Sequence[SensorConfig], after: Sequence[SensorConfig],
              at: float) -> PinHandover:
    """With the old loop stopped: hold every edge (those still in its ``inbox`` first), and
    move out of ``inputs`` the pins of sensors whose wiring is the same in ``after``;
    state machines go along where every setting is the same."""
    relay.hold(inbox.take_edges())
    old: Mapping[str, SensorConfig] = {s.name: s for s in before}
    handover = PinHandover(relay, {}, {}, {}, at)
    for sensor in after:
        was = old.get(sensor.name)
        if was is None or sensor.name not in inputs or (was.pin, was.pull, was.active, was.pin_nc) \
                != (sensor.pin, sensor.pull, sensor.active, sensor.pin_nc):
            continue       # new or rewired: the old agent releases it, the next claims it
        handover.inputs[sensor.name] = inputs.pop(sensor.name)
        machine = sensors.machine(sensor.name)
        handover.levels[sensor.name] = machine.raw
        nc = sensor.nc_input
        if nc is not None and nc in inputs:     # a Form C smoke's NC pin goes along
            handover.inputs[nc] = inputs.pop(nc)
            handover.levels[nc] = sensors.state(sensor.name).raw_nc is True
        if was == sensor:
            handover.machines[sensor.name] = _unwrapped(machine)
    return handover

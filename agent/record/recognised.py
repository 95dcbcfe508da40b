"""What the recorder takes: a *recognised event*, before it has a number or a signature.

Sensor state machines (``drivers.events.SensorEvent``), care rules (``CareEvent``) and
the agent itself (:class:`AgentEvent`) hand the recorder anything with ``type``,
``sensor``, ``at`` (monotonic seconds), ``data`` and ``critical``
(:class:`Recognised`); ``agent/record/events.py`` makes the signed event of it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from agent.record.events import AGENT_SENSOR


class Recognised(Protocol):
    """What sensors, care rules and the agent hand to the recorder."""

    @property
    def type(self) -> str: ...
    @property
    def sensor(self) -> str: ...
    @property
    def at(self) -> float: ...
    @property
    def data(self) -> Mapping[str, Any]: ...
    @property
    def critical(self) -> bool: ...


@dataclass(frozen=True)
class AgentEvent:
    """An event of the agent's own (``agent.started``, ``command.done``, ``buffer.evicted``...)."""

    type: str
    at: float
    data: Mapping[str, Any] = field(default_factory=dict)
    critical: bool = False
    sensor: str = AGENT_SENSOR

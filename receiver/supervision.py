"""Gateway supervision (sans-IO): ``gateway.silent`` and ``gateway.back`` (docs/spec.md §15).

Theory of operation
-------------------
Each registered gateway is ``watching`` or ``silent``. Inputs carry their own time
(epoch seconds, the one clock several receivers share): ``seen`` (an event of the
gateway was received), ``offline`` (its retained status turned ``offline``, the MQTT
last will) and ``advance(now)`` (time passes). A gateway not seen for
``factor x heartbeat_s`` (3 x 900 s by default), or reported offline, becomes
``silent``; its next event makes it ``watching`` again (``gateway.back``). A gateway
never seen is watched from the moment supervision started. Only one receiver supervises
at a time (the shell holds a database lock); the table below is all the logic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

from receiver.alarms import BACK, SILENT

DEFAULT_HEARTBEAT_S = 900.0
DEFAULT_FACTOR = 3
WATCHING, QUIET = "watching", "silent"
#: {state: {input: new state}}; an input missing from a row is ignored in that state
TRANSITIONS: Dict[str, Dict[str, str]] = {
    WATCHING: {"seen": WATCHING, "timeout": QUIET, "offline": QUIET},
    QUIET: {"seen": WATCHING},
}


@dataclass(frozen=True)
class Change:
    """``gateway.silent`` (``reason`` ``no_events`` or ``offline``) or ``gateway.back``."""

    device_id: str
    type: str
    at: float
    reason: str
    last_seen: Optional[float]

    def __post_init__(self) -> None:
        if self.type not in (SILENT, BACK):
            raise ValueError(f"a supervision change is {SILENT} or {BACK}, not {self.type!r}")


class _Gateway:
    def __init__(self, since: float, heartbeat_s: float) -> None:
        self.state = WATCHING
        self.last_seen: Optional[float] = None
        self.since = since              # last event, or when watching began
        self.heartbeat_s = heartbeat_s


class Supervisor:
    """Watches the gateways named in ``heartbeat_s`` (device id -> seconds)."""

    def __init__(self, heartbeat_s: Mapping[str, float], *, now: float,
                 factor: int = DEFAULT_FACTOR) -> None:
        if factor < 1:
            raise ValueError(f"factor is {factor}; a gateway is silent after >= 1 heartbeat")
        for device_id, seconds in heartbeat_s.items():
            if not seconds > 0:
                raise ValueError(f"heartbeat_s of {device_id!r} is {seconds}; it must be > 0")
        self.factor = factor
        self._gateways = {d: _Gateway(now, float(s)) for d, s in heartbeat_s.items()}

    def __repr__(self) -> str:
        quiet = sorted(d for d, g in self._gateways.items() if g.state == QUIET)
        return f"<Supervisor {len(self._gateways)} gateways, silent={quiet}>"

    def state(self, device_id: str) -> str:
        return self._gateways[device_id].state

    def restore_silent(self, device_id: str) -> None:
        """A gateway already silent when this receiver took over supervision."""
        if device_id in self._gateways:
            self._gateways[device_id].state = QUIET

    def _step(self, device_id: str, what: str) -> Optional[str]:
        gateway = self._gateways[device_id]
        new = TRANSITIONS[gateway.state].get(what)
        if new is None:
            return None
        old, gateway.state = gateway.state, new
        return old

    def seen(self, device_id: str, at: float) -> List[Change]:
        gateway = self._gateways.get(device_id)
        if gateway is None or (gateway.last_seen is not None and at <= gateway.last_seen):
            return []
        gateway.last_seen = gateway.since = at
        old = self._step(device_id, "seen")
        return [Change(device_id, BACK, at, "event", at)] if old == QUIET else []

    def offline(self, device_id: str, at: float) -> List[Change]:
        gateway = self._gateways.get(device_id)
        if gateway is None or (gateway.last_seen is not None and at < gateway.last_seen):
            return []                   # an older status than the last event
        old = self._step(device_id, "offline")
        return [Change(device_id, SILENT, at, "offline", gateway.last_seen)] \
            if old == WATCHING else []

    def _due(self, gateway: _Gateway) -> float:
        return gateway.since + self.factor * gateway.heartbeat_s

    def advance(self, now: float) -> List[Change]:
        changes = []
        for device_id, gateway in sorted(self._gateways.items()):
            if gateway.state == WATCHING and now >= self._due(gateway):
                self._step(device_id, "timeout")
                changes.append(Change(device_id, SILENT, now, "no_events", gateway.last_seen))
        return changes

    def next_deadline(self) -> Optional[float]:
        due = [self._due(g) for g in self._gateways.values() if g.state == WATCHING]
        return min(due) if due else None

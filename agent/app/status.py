"""What the running agent says about itself: the heartbeat's data, ``status.json``, a ``ping``.

:class:`AgentStatus` reads the pieces' own status objects — the publisher's
``LinkStatus``, the outbox's stats, the recorder's storage state and last events, the
sensors' states, the feedback's phase — and builds from them a :class:`StatusSnapshot`
(what ``status.json`` holds, read by ``homecare-agent status``) or the heartbeat's
summary. It is given those pieces when the agent is assembled and never calls back into
the agent. :class:`StatusFile` writes the snapshot, at most once a second and only when
something but the time changed. :class:`Actions` is what an accepted command does.

Nothing here imports paho or gpiozero: ``status`` imports this module for its file name.
"""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Callable, Dict, Mapping, Optional, Protocol)

from agent import __version__
from agent.app.sensors import SensorState, Sensors
from agent.errors import OutboxError

if TYPE_CHECKING:
    from agent.app.storage import OutboxSlot
    from agent.delivery.link import LinkStatus
    from agent.record.recorder import Recorder

log = logging.getLogger("agent")

#: the snapshot's file name in the state folder
STATUS_FILE = "status.json"
#: how often, at most, ``status.json`` is rewritten
STATUS_EVERY_S = 1.0


class LinkSource(Protocol):
    @property
    def status(self) -> "LinkStatus": ...


class FeedbackSource(Protocol):
    def snapshot(self) -> Dict[str, Any]: ...


class FailureCounter(Protocol):
    def policy_failures(self) -> int: ...


class CountersSource(Protocol):
    @property
    def degraded(self) -> Optional[str]: ...


@dataclass(frozen=True)
class LastEvent:
    type: str
    ts: str
    seq: int

    def __post_init__(self) -> None:
        if self.seq < 1:
            raise ValueError(f"last event {self.type}: seq must be >= 1, got {self.seq}")


@dataclass(frozen=True)
class StorageStatus:
    failed: Optional[str]
    memory_depth: int
    counters_saved: bool

    def __post_init__(self) -> None:
        if self.memory_depth < 0:
            raise ValueError(f"memory_depth cannot be negative, got {self.memory_depth}")


@dataclass(frozen=True)
class StatusSnapshot:
    """The agent as ``status.json`` shows it (docs/technician.md, ``status``)."""

    pid: int
    version: str
    device: str
    updated: float              # epoch seconds, real time also under simulate's virtual clock
    link: "LinkStatus"
    sensors: Mapping[str, SensorState]
    last_events: Mapping[str, LastEvent]
    feedback: Mapping[str, Any]
    storage: StorageStatus

    def as_json(self) -> Dict[str, Any]:
        return {"pid": self.pid, "version": self.version, "device": self.device,
                "updated": self.updated, "link": link_json(self.link),
                "sensors": sensors_json(self.sensors),
                "last_events": {n: asdict(e) for n, e in self.last_events.items()},
                "feedback": dict(self.feedback), "storage": asdict(self.storage)}


def link_json(link: "LinkStatus") -> Dict[str, Any]:
    return {"connected": link.connected, "endpoint": link.endpoint, "since": link.since,
            "connects": link.connects,
            "reconnects": link.reconnects, "stalls": link.stalls, "last_error": link.last_error,
            "delivered": link.delivered, "rejected": link.rejected,
            "last_rejected_reason": link.last_rejected_reason,
            "last_rejected_at": link.last_rejected_at}


def sensors_json(sensors: Mapping[str, SensorState]) -> Dict[str, Any]:
    return {name: {"state": s.state, "raw": s.raw} for name, s in sensors.items()}


class AgentStatus:
    """Reads the running pieces (module docstring); safe from the loop's thread."""

    def __init__(self, *, device_id: str, link: LinkSource, outbox: "OutboxSlot",
                 recorder: "Recorder", sensors: Sensors, feedback: FeedbackSource,
                 counters: CountersSource, commands: Optional[FailureCounter] = None,
                 epoch: Callable[[], float] = time.time) -> None:
        self.device_id = device_id
        self._link, self._outbox, self._recorder = link, outbox, recorder
        self._sensors, self._feedback, self._counters = sensors, feedback, counters
        self._commands = commands
        self._epoch = epoch

    def link(self) -> "LinkStatus":
        return self._link.status

    def recorded(self) -> int:
        """Events recorded since start."""
        return self._recorder.recorded_total

    def buffered(self) -> int:
        """Events not yet delivered: in the outbox (as far as it can be read) and in memory."""
        depth = self._recorder.source.memory_depth()
        outbox = self._outbox.current
        if outbox is not None:
            try:
                depth += outbox.stats().depth
            except (OutboxError, OSError):
                pass
        return depth

    def summary(self) -> Dict[str, Any]:
        """The heartbeat's data (docs/integrators.md, ``agent.heartbeat``)."""
        link = self._link.status
        depth = critical = None
        outbox = self._outbox.current
        if outbox is not None:
            try:
                stats = outbox.stats()
                depth, critical = stats.depth, stats.critical.rows
            except (OutboxError, OSError):
                pass    # a failing card: the heartbeat still goes out, without the depth
        summary: Dict[str, Any] = {
            "connected": link.connected, "endpoint": link.endpoint, "reconnects": link.reconnects,
            "outbox_depth": depth, "outbox_critical": critical,
            "delivered": link.delivered, "inflight": link.inflight,
            "signature_failures": (self._commands.policy_failures()
                                   if self._commands is not None else 0),
            "open_alarms": self._feedback.snapshot().get("open_alarms", 0)}
        blips = self._sensors.power_blips()
        if blips is not None:
            summary["power_blips"] = blips
        recorder = self._recorder
        if recorder.storage_failed is not None or recorder.source.memory_depth():
            summary["storage_failed"] = recorder.storage_failed
            summary["memory_depth"] = recorder.source.memory_depth()
            summary["memory_evicted"] = sum(recorder.source.memory_evicted())
        return summary

    def snapshot(self) -> StatusSnapshot:
        recorder = self._recorder
        return StatusSnapshot(
            pid=os.getpid(), version=__version__, device=self.device_id, updated=self._epoch(),
            link=self._link.status, sensors=self._sensors.states(),
            last_events={name: LastEvent(e.type, e.ts, e.seq)
                         for name, e in recorder.last_by_sensor.items()},
            feedback=self._feedback.snapshot(),
            storage=StorageStatus(recorder.storage_failed, recorder.source.memory_depth(),
                                  self._counters.degraded is None))


class StatusFile:
    """Keeps ``status.json`` in the state folder current, at most once a second."""

    def __init__(self, path: Path, status: AgentStatus, *, every_s: float = STATUS_EVERY_S) -> None:
        self.path = path
        self._status = status
        self._every_s = every_s
        self._written = ""
        self._due = 0.0
        self._failed = False

    def update(self, now: float, *, force: bool = False) -> None:
        """Write the snapshot if a second has passed and it changed (``force``: now)."""
        if now < self._due and not force:
            return
        self._due = now + self._every_s
        snap = self._status.snapshot().as_json()
        key = json.dumps({k: v for k, v in snap.items() if k != "updated"}, sort_keys=True)
        if key == self._written and not force:
            return
        self._written = key
        tmp = self.path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(snap, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as exc:  # an unwritable state folder: said once, not every second
            if not self._failed:
                log.warning("cannot write %s (%s); status shows the last one written",
                            self.path, exc.strerror)
            self._failed = True
        else:
            self._failed = False

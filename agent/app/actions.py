"""What accepted commands do (agent.remote.handler's ``Actions``), on the agent's own pieces.

``maintenance`` goes to the maintenance period (agent/app/maintenance.py); ``ack`` and ``locate`` go to the local feedback (the alarm book, buzzer and LED); an
``ack`` answers with the alarms it closed; ``ping`` answers with
the link, the sensors and the feedback as ``status.json`` shows them. Given its pieces
when the agent is assembled; it never calls back into the agent.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Protocol, Sequence

from agent.alarms.book import Acknowledged
from agent.app.sensors import Sensors
from agent.app.status import LinkSource, link_json, sensors_json
from agent.record.recognised import Recognised


class MaintenanceActions(Protocol):
    def command(self, args: Any, now: float) -> List[Recognised]: ...


class FeedbackActions(Protocol):
    def ack(self, in_reply_to: Optional[str]) -> List[Acknowledged]: ...
    def locate(self) -> None: ...
    def snapshot(self) -> Dict[str, Any]: ...


class Actions:
    def __init__(self, *, feedback: FeedbackActions, link: LinkSource, sensors: Sensors,
                 maintenance: Optional[MaintenanceActions] = None) -> None:
        self._feedback, self._link, self._sensors = feedback, link, sensors
        self._maintenance = maintenance

    def ack(self, in_reply_to: Optional[str]) -> List[Dict[str, Any]]:
        return [a.data() for a in self._feedback.ack(in_reply_to)]

    def locate(self) -> None:
        self._feedback.locate()

    def maintenance(self, args: Mapping[str, Any], now: float) -> Sequence[Recognised]:
        """docs/spec.md §13.4: the period's events and the tamper switches' (agent/app/maintenance.py)."""
        if self._maintenance is None:
            raise RuntimeError("maintenance command accepted but no MaintenanceMode was given to Actions")
        return self._maintenance.command(args, now)

    def status(self) -> Dict[str, Any]:
        return {"link": link_json(self._link.status), "sensors": sensors_json(self._sensors.states()),
                "feedback": self._feedback.snapshot()}

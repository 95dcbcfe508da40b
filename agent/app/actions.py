"""What accepted commands do (agent.remote.handler's ``Actions``), on the agent's own pieces.

``ack`` and ``locate`` go to the local feedback (the alarm book, buzzer and LED); an
``ack`` answers with the alarms it closed; ``ping`` answers with
the link, the sensors and the feedback as ``status.json`` shows them. Given its pieces
when the agent is assembled; it never calls back into the agent.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol

from agent.alarms.book import Acknowledged
from agent.app.sensors import Sensors
from agent.app.status import LinkSource, link_json, sensors_json


class FeedbackActions(Protocol):
    def ack(self, in_reply_to: Optional[str]) -> List[Acknowledged]: ...
    def locate(self) -> None: ...
    def snapshot(self) -> Dict[str, Any]: ...


class Actions:
    def __init__(self, *, feedback: FeedbackActions, link: LinkSource, sensors: Sensors) -> None:
        self._feedback, self._link, self._sensors = feedback, link, sensors

    def ack(self, in_reply_to: Optional[str]) -> List[Dict[str, Any]]:
        return [a.data() for a in self._feedback.ack(in_reply_to)]

    def locate(self) -> None:
        self._feedback.locate()

    def status(self) -> Dict[str, Any]:
        return {"link": link_json(self._link.status), "sensors": sensors_json(self._sensors.states()),
                "feedback": self._feedback.snapshot()}

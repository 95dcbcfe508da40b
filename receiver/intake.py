"""The intake decision for one MQTT message (sans-IO): is it a good event, and where
does it stand in its gateway's ``seq`` series?

Theory of operation
-------------------
1. The topic names the gateway (``{prefix}/events/{sensor}``, docs/spec.md §5); the
   registry must know it, and the token must verify with *that* gateway's key
   (``verify`` is injected: :meth:`receiver.registry.Registry.verify`), with ``iss`` equal
   to the topic's device and ``sensor`` to the topic's sensor. Anything else is refused
   with a reason and never stored.
2. De-duplication on ``jti`` is the database's (one row per ``jti``, ``ON CONFLICT DO
   NOTHING``): several receivers share the stream, so no single process can know.
3. For a stored (new) event, :func:`classify_seq` compares its (``boot``, ``seq``) with the
   highest seen for the gateway (read under a row lock, so instances agree) and says
   whether numbers are missing. Gaps are normal (docs/integrators.md: seq blocks, evictions,
   superseded heartbeats, critical events overtaking), so they are counted, not refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

from receiver.alarms import opens_alarm

#: refusal reasons, as counted and logged
NOT_AN_EVENT_TOPIC = "not_an_event_topic"
UNKNOWN_DEVICE = "unknown_device"
BAD_TOKEN = "bad_token"
WRONG_ISSUER = "wrong_issuer"

#: the agent reserves seq numbers in blocks of this many (agent/record/counters.py)
FIRST_BLOCK = 1000
Verify = Callable[[str, str], Dict[str, Any]]   # (device_id, token) -> claims, ValueError


@dataclass(frozen=True)
class Accepted:
    """A verified event, not yet known to be new."""

    device_id: str
    token: str
    claims: Mapping[str, Any]
    alarm: bool

    @property
    def jti(self) -> str:
        return str(self.claims["jti"])


@dataclass(frozen=True)
class Refused:
    """A message that is not stored; ``detail`` says why, for the log."""

    reason: str
    detail: str
    device_id: Optional[str] = None


def split_topic(topic: str) -> Optional[Tuple[str, str]]:
    """``(device_id, sensor)`` of ``<root>/<device>/events/<sensor>``, else None."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[2] != "events" or not parts[1] or not parts[3]:
        return None
    return parts[1], parts[3]


def decide(topic: str, payload: bytes, *, known: Callable[[str], bool],
           verify: Verify) -> Union[Accepted, Refused]:
    """Step 1 of the module docstring; never raises for bad input."""
    where = split_topic(topic)
    if where is None:
        return Refused(NOT_AN_EVENT_TOPIC, f"topic {topic!r} is not <root>/<device>/events/<sensor>")
    device_id, sensor = where
    if not known(device_id):
        return Refused(UNKNOWN_DEVICE, f"{device_id!r} is not in the device registry", device_id)
    try:
        token = payload.decode("ascii")
        claims = verify(device_id, token)
    except (UnicodeDecodeError, ValueError) as exc:
        return Refused(BAD_TOKEN, str(exc), device_id)
    if claims.get("iss") != device_id or claims.get("sensor") != sensor:
        return Refused(WRONG_ISSUER, f"iss {claims.get('iss')!r} / sensor "
                       f"{claims.get('sensor')!r} do not match topic {topic!r}", device_id)
    return Accepted(device_id, token, claims, opens_alarm(claims))


@dataclass(frozen=True)
class SeqStep:
    """Where an event stands: ``kind`` is ``first``, ``next``, ``gap``, ``late``,
    ``new_boot`` or ``reset``; ``missing`` is the change in the numbers not yet seen: +n
    for a ``gap`` that skips n, -1 for a ``late`` event of the same boot (it fills one)."""

    kind: str
    missing: int = 0


def classify_seq(last: Optional[Tuple[int, int]], boot: int, seq: int) -> SeqStep:
    """Compare a new event's (``boot``, ``seq``) with the highest seen, ``last``."""
    if last is None:
        return SeqStep("first")
    last_boot, last_seq = last
    if boot == last_boot:
        if seq == last_seq + 1:
            return SeqStep("next")
        if seq > last_seq:
            return SeqStep("gap", seq - last_seq - 1)
        return SeqStep("late", -1)      # overtaken in the buffer, or by another receiver
    if boot > last_boot:
        # a new start skips the rest of the reserved block: not a loss (integrators.md)
        return SeqStep("new_boot") if seq > last_seq else SeqStep("reset")
    # a wiped state directory starts again at boot 1 (integrators.md); any other lower
    # boot is an old event overtaken in the gateway's buffer
    return SeqStep("reset") if boot == 1 and seq <= FIRST_BLOCK else SeqStep("late")


def advance_last(last: Optional[Tuple[int, int]], boot: int, seq: int) -> Tuple[int, int]:
    """The highest (``boot``, ``seq``) after this event (a reset starts a new series)."""
    step = classify_seq(last, boot, seq)
    if last is None or step.kind in ("next", "gap", "new_boot", "reset"):
        return (boot, seq)
    return last

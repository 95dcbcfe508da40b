"""Which events open an alarm, and the operator's acknowledge (sans-IO).

Theory of operation: an event opens an alarm when docs/spec.md §11 says so; the alarm's
id is the opening event's ``jti``. The receiver adds one kind of its own,
``gateway.silent`` (docs/spec.md §15), which no command answers. Acknowledging a
device's alarm makes the claims of an ``ack`` command (docs/spec.md §7) whose
``in_reply_to`` is the alarm's id; the time from the alarm's ``ts`` to the
acknowledgement is kept with the alarm. Nothing here signs, stores or sends.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional

#: docs/spec.md §11: each of these opens an alarm (tamper.opened only outside
#: maintenance, which the agent marks by sending it as critical, §13.4)
ALARM_TYPES = frozenset({"sos.pressed", "smoke.alarm", "sensor.stuck", "tamper.opened",
                         "care.night_door", "care.inactivity", "care.door_left_open",
                         "care.not_returned"})
SILENT = "gateway.silent"
BACK = "gateway.back"
#: docs/spec.md §7: exp at most 10 minutes after iat
MAX_COMMAND_LIFETIME_S = 600
COMMAND_TYP = "homecare-command+jwt"


def opens_alarm(claims: Mapping[str, Any]) -> bool:
    """True when the verified event ``claims`` open an alarm (docs/spec.md §11)."""
    kind = claims.get("type")
    if kind == "tamper.opened":
        return claims.get("prio") == "critical"
    return kind in ALARM_TYPES


def parse_ts(ts: str) -> float:
    """Epoch seconds of an RFC 3339 UTC ``ts`` such as ``2026-11-28T14:07:51.123Z``."""
    if not ts.endswith("Z"):
        raise ValueError(f"ts {ts!r} is not RFC 3339 UTC (ending in Z)")
    when = datetime.strptime(ts[:-1], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=timezone.utc)
    return when.timestamp()


@dataclass(frozen=True)
class Alarm:
    """One open alarm as the operator sees it."""

    alarm_id: str
    device_id: str
    type: str
    sensor: str
    ts: str
    opened_at: float

    def __post_init__(self) -> None:
        if not self.alarm_id or not self.device_id or not self.type:
            raise ValueError("an alarm needs an id, a device and a type")
        if self.type != SILENT:
            parse_ts(self.ts)

    @property
    def answerable(self) -> bool:
        """A device's alarm is answered with an ``ack`` command; a silent gateway is not."""
        return self.type != SILENT

    def as_json(self) -> Dict[str, Any]:
        return {"alarm_id": self.alarm_id, "device_id": self.device_id, "type": self.type,
                "sensor": self.sensor, "ts": self.ts, "opened_at": self.opened_at}


def latency_ms(alarm: Alarm, acked_at: float) -> int:
    """Whole milliseconds from the alarm's ``ts`` (or, for gateway.silent, its opening)."""
    start = parse_ts(alarm.ts) if alarm.answerable else alarm.opened_at
    return int((acked_at - start) * 1000)


def ack_claims(alarm: Alarm, *, jti: str, now_epoch: float,
               lifetime_s: int = 300) -> Optional[Dict[str, Any]]:
    """The claims of the ``ack`` that answers ``alarm``, or None when none is sent."""
    if not 1 <= lifetime_s <= MAX_COMMAND_LIFETIME_S:
        raise ValueError(f"lifetime_s is {lifetime_s}; a command lives 1-600 s (spec §7)")
    if not alarm.answerable:
        return None
    iat = int(now_epoch)
    return {"aud": alarm.device_id, "jti": jti, "iat": iat, "exp": iat + lifetime_s,
            "cmd": "ack", "in_reply_to": alarm.alarm_id}

"""The outbox's values, and the check that a stored row can be an event (docs/spec.md §6).

:class:`OutboxRow` is one signed event as the outbox keeps it; :class:`PutResult`,
:class:`OutboxStats` and :class:`Damage` are what the outbox's reads and writes return.
A sound SQLite file can still hold a row that cannot be an event (an empty or TEXT
payload, a negative ``seq``, a value of the wrong type: a bit flip or a hand edit passes
``quick_check``); :data:`DAMAGE_SQL` says why, in SQL, for a whole table at once, and
:func:`checked_row` turns a row read with :data:`SELECT_ROWS` into an :class:`OutboxRow`
or the reason it cannot be one. Nothing here touches a connection.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple, Union

from agent.outbox.policy import EvictionReport, row_size

#: why a stored row cannot be an event, or NULL (SQLite keeps whatever type it is given)
DAMAGE_SQL = """CASE
    WHEN typeof(seq) != 'integer' THEN 'seq is ' || typeof(seq) || ', not a whole number'
    WHEN seq < 1 THEN 'impossible seq ' || seq
    WHEN typeof(payload) != 'blob' THEN 'payload is ' || typeof(payload) || ', not the signed JWT as bytes'
    WHEN length(payload) = 0 THEN 'empty payload'
    WHEN typeof(critical) != 'integer' OR critical NOT IN (0, 1)
        THEN 'critical is ' || substr(quote(critical), 1, 40) || ', not 0 or 1'
    WHEN typeof(topic) != 'text' OR topic = '' THEN 'topic is ' || typeof(topic) || ' or empty'
    WHEN typeof(jti) != 'text' OR jti = '' THEN 'jti is ' || typeof(jti) || ' or empty'
    WHEN typeof(sensor) != 'text' THEN 'sensor is ' || typeof(sensor) || ', not text'
    WHEN typeof(type) != 'text' THEN 'type is ' || typeof(type) || ', not text'
    WHEN typeof(created) NOT IN ('integer', 'real') THEN 'created is ' || typeof(created) || ', not a time'
    WHEN typeof(size) != 'integer' OR size < 0 THEN 'size is ' || substr(quote(size), 1, 40) || ', not a byte count'
END"""
#: the columns :func:`checked_row` reads, the last one :data:`DAMAGE_SQL`
SELECT_ROWS = ("SELECT row_id, seq, critical, topic, payload, jti, sensor, type, created, "
               + DAMAGE_SQL + " FROM outbox")


@dataclass(frozen=True)
class OutboxRow:
    """One signed event waiting for its PUBACK; ``payload`` is the JWT exactly as signed.

    ``row_id`` is None until ``put`` has stored the row; the rows ``put`` returns and
    ``next_batch`` gives carry it, and ``ack`` takes it.
    """

    seq: int
    critical: bool
    topic: str
    payload: bytes
    jti: str
    sensor: str
    type: str
    created: float
    row_id: Optional[int] = None

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 0:
            raise ValueError(f"OutboxRow.seq must be a whole number >= 0, got {self.seq!r}")
        if not isinstance(self.payload, bytes) or not self.payload:
            raise ValueError("OutboxRow.payload must be the signed JWT as non-empty bytes")
        if not self.topic:
            raise ValueError("OutboxRow.topic cannot be empty")

    @property
    def size(self) -> int:
        """Accounted bytes (what ``buffer.max_mb`` limits)."""
        text = sum(len(s.encode("utf-8")) for s in (self.topic, self.jti, self.sensor, self.type))
        return row_size(payload=len(self.payload), text_fields=text)


@dataclass(frozen=True)
class PutResult:
    rows: Tuple[OutboxRow, ...]          # the rows as stored, with their row_id
    evicted: Optional[EvictionReport]    # what this put pushed out, if anything


@dataclass(frozen=True)
class LaneStats:
    rows: int
    bytes: int
    oldest_created: Optional[float]


@dataclass(frozen=True)
class OutboxStats:
    normal: LaneStats
    critical: LaneStats
    evicted_normal_total: int
    evicted_critical_total: int
    pending_evictions: Optional[EvictionReport]

    @property
    def depth(self) -> int:
        return self.normal.rows + self.critical.rows

    @property
    def evicted_total(self) -> int:
        return self.evicted_normal_total + self.evicted_critical_total


@dataclass(frozen=True)
class Damage:
    """A row or ``meta`` value set aside (docs/spec.md §6), for ``buffer.row_quarantined``
    (``row_id`` set) or ``buffer.meta_reset`` (``key`` set)."""

    id: int
    reason: str
    row_id: Optional[int] = None
    key: Optional[str] = None
    seq: Optional[int] = None
    type: Optional[str] = None

    def as_data(self) -> Dict[str, Any]:
        if self.row_id is None:
            return {"key": self.key, "reason": self.reason}
        data: Dict[str, Any] = {"row_id": self.row_id, "reason": self.reason}
        if self.seq is not None:
            data["seq"] = self.seq
        if self.type is not None:
            data["type"] = self.type
        return data


def checked_row(r: Sequence[Any]) -> Union[OutboxRow, str]:
    """The row read with :data:`SELECT_ROWS`, or why it cannot be an event."""
    if r[9] is not None:
        return str(r[9])
    # a payload that is bytes but not a JWT is sent: the cloud's signature check refuses it
    try:
        return OutboxRow(seq=r[1], critical=bool(r[2]), topic=r[3], payload=bytes(r[4]), jti=r[5],
                         sensor=r[6], type=r[7], created=float(r[8]), row_id=r[0])
    except (TypeError, ValueError) as exc:
        return str(exc)


def damage_of(r: Sequence[Any]) -> Damage:
    """A quarantine table row (``id, reason, row_id, meta_key, seq, type``) as :class:`Damage`."""
    seq = r[4] if isinstance(r[4], int) else None
    return Damage(id=r[0], reason=str(r[1]), row_id=r[2], key=r[3], seq=seq,
                  type=r[5][:100] if isinstance(r[5], str) else None)


def boot_of(payload: Any) -> int:
    """The ``boot`` claim of a stored JWT (no signature check: only a floor), else 0."""
    try:
        claims = bytes(payload).split(b".")[1]
        boot = json.loads(base64.urlsafe_b64decode(claims + b"=" * (-len(claims) % 4)))["boot"]
    except (IndexError, KeyError, TypeError, ValueError):
        return 0
    return boot if isinstance(boot, int) and not isinstance(boot, bool) and boot > 0 else 0

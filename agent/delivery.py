"""Delivery window: which outbox rows are on the wire, and is the broker keeping up?

Theory of operation
-------------------
The publisher sends rows from the outbox as MQTT QoS 1 publishes. Each publish gets
a packet id (``mid``) from the MQTT client; this object remembers ``mid -> row_id``
for every publish not yet acknowledged. A PUBACK with a success reason code (below
0x80; mosquitto answers 0x10 "no matching subscribers" on MQTT 5, which is a
success) turns a ``mid`` back into a ``row_id`` that the outbox may delete. A
failure reason code keeps the row, which is offered again after ``retry_rejected_s``.

The broker is "stalled" when publishes are outstanding and no PUBACK has arrived for
``ack_timeout_s``: it accepted the connection but stopped acknowledging (or the link
went silent). The shell then drops the connection and starts afresh. On every
disconnect :meth:`reset` forgets all ``mid``s: their rows are still in the outbox and
are sent again on the next connection (the cloud de-duplicates by ``jti``).

An optional publish rate cap (a token bucket) keeps us inside managed brokers' limits
(AWS IoT Core: 100 publishes/s per connection) while draining a backlog.

No I/O here: every method takes ``now`` (monotonic seconds).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, List, Optional, Set

#: MQTT 5 reason codes below this value mean success (e.g. 0x00, 0x10).
FIRST_FAILURE_REASON = 0x80


@dataclass(frozen=True)
class WindowSettings:
    """Limits of the delivery window (SPEC.md section 10, ``mqtt``)."""

    max_inflight: int = 20
    ack_timeout_s: float = 20.0
    max_publish_rate: Optional[float] = None
    retry_rejected_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_inflight < 1:
            raise ValueError(f"max_inflight must be at least 1, not {self.max_inflight}")
        if self.ack_timeout_s <= 0:
            raise ValueError(f"ack_timeout_s must be positive, not {self.ack_timeout_s}")
        if self.max_publish_rate is not None and self.max_publish_rate <= 0:
            raise ValueError(f"max_publish_rate must be positive, not {self.max_publish_rate}")


@dataclass(frozen=True)
class AckResult:
    """What one PUBACK meant for the outbox."""

    row_id: Optional[int]      # the row it acknowledged, None for a mid we did not send
    delivered: bool            # True: delete the row; False: the broker refused it
    reason_code: int


class DeliveryWindow:
    """Bookkeeping of unacknowledged publishes for one MQTT connection at a time."""

    def __init__(self, settings: WindowSettings) -> None:
        self.settings = settings
        self._inflight: Dict[int, int] = {}          # mid -> row_id
        self._rejected_until: Dict[int, float] = {}  # row_id -> when to offer it again
        self._last_progress: Optional[float] = None
        self._tokens = float(self._bucket_size())
        self._tokens_at: Optional[float] = None
        self.delivered_total = 0
        self.rejected_total = 0

    # --- what may be sent -------------------------------------------------------
    def room(self, now: float) -> int:
        """How many more rows may be published right now."""
        free = self.settings.max_inflight - len(self._inflight)
        if self.settings.max_publish_rate is not None:
            self._refill(now)
            free = min(free, int(self._tokens))
        return max(free, 0)

    def busy_rows(self, now: float) -> FrozenSet[int]:
        """Rows the publisher must not send now: in flight, or refused recently."""
        for row_id, until in list(self._rejected_until.items()):
            if until <= now:
                del self._rejected_until[row_id]
        return frozenset(self._inflight.values()) | frozenset(self._rejected_until)

    # --- events from the client -----------------------------------------------------
    def sent(self, mid: int, row_id: int, now: float) -> None:
        if not self._inflight:
            # the stall clock starts with the first outstanding publish
            self._last_progress = now
        self._inflight[mid] = row_id
        if self.settings.max_publish_rate is not None:
            self._refill(now)
            self._tokens -= 1.0

    def acked(self, mid: int, reason_code: int, now: float) -> AckResult:
        row_id = self._inflight.pop(mid, None)
        if row_id is None:
            return AckResult(None, False, reason_code)
        self._last_progress = now
        if reason_code < FIRST_FAILURE_REASON:
            self.delivered_total += 1
            return AckResult(row_id, True, reason_code)
        self.rejected_total += 1
        self._rejected_until[row_id] = now + self.settings.retry_rejected_s
        return AckResult(row_id, False, reason_code)

    def reset(self) -> List[int]:
        """The connection is gone: forget every mid. Returns the rows that were in flight."""
        rows = list(self._inflight.values())
        self._inflight.clear()
        self._last_progress = None
        return rows

    # --- timers --------------------------------------------------------------------
    def stalled(self, now: float) -> bool:
        """True when publishes are outstanding and no PUBACK came for ``ack_timeout_s``."""
        return (bool(self._inflight) and self._last_progress is not None
                and now - self._last_progress >= self.settings.ack_timeout_s)

    def next_deadline(self, now: float) -> Optional[float]:
        deadlines: List[float] = []
        if self._inflight and self._last_progress is not None:
            deadlines.append(self._last_progress + self.settings.ack_timeout_s)
        if self._rejected_until:
            deadlines.append(min(self._rejected_until.values()))
        rate = self.settings.max_publish_rate
        if rate is not None and self._tokens < 1.0:
            deadlines.append(now + (1.0 - self._tokens) / rate)
        return min(deadlines) if deadlines else None

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def inflight_rows(self) -> Set[int]:
        return set(self._inflight.values())

    # --- rate limit ------------------------------------------------------------------
    def _bucket_size(self) -> float:
        rate = self.settings.max_publish_rate
        # allow a burst of one second's worth (at least one publish)
        return max(1.0, rate) if rate is not None else 0.0

    def _refill(self, now: float) -> None:
        rate = self.settings.max_publish_rate
        assert rate is not None
        if self._tokens_at is not None:
            self._tokens = min(self._bucket_size(), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now

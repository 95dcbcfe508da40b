"""Delivery window: which outbox rows are on the wire, is the broker keeping up, and when to redial?

Theory of operation
-------------------
The publisher sends rows from the outbox as MQTT QoS 1 publishes. Each publish gets
a packet id (``mid``) from the MQTT client; this object remembers ``mid -> row_id``
for every publish not yet acknowledged. A PUBACK with a success reason code (below
0x80; mosquitto answers 0x10 "no matching subscribers" on MQTT 5, which is a
success) turns a ``mid`` back into a ``row_id`` that the outbox may delete. A
failure reason code keeps the row, which is offered again after ``retry_rejected_s``,
doubled for each refusal of that row in a row (up to 8 times as long): thousands of rows
an ACL refuses cost little, and :meth:`refusal_report` sums them up for one log line per
``retry_rejected_s`` instead of one per row.

The broker is "stalled" when publishes are outstanding and no PUBACK has arrived for
``ack_timeout_s``: it accepted the connection but stopped acknowledging (or the link
went silent). The shell then drops the connection and starts afresh. On every
disconnect :meth:`reset` forgets all ``mid``s: their rows are still in the outbox and
are sent again on the next connection (the cloud de-duplicates by ``jti``).

An optional publish rate cap (a token bucket) keeps us inside managed brokers' limits
(AWS IoT Core: 100 publishes/s per connection) while draining a backlog.

:class:`ReconnectBackoff` decides when to dial the broker again: exponential back-off
with full jitter, cut short by a critical event (at most once every 5 s) and reset by a
session that stayed up 10 s or saw a PUBACK (docs/spec.md §6); with several broker
endpoints its step grows only once per round, one try of each (docs/spec.md §12.1).
:class:`IncomingSizeGuard` spots an oversized incoming packet from its fixed header
(docs/spec.md §7).

No I/O here: every method takes ``now`` (monotonic seconds).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, List, Optional

#: MQTT 5 reason codes below this value mean success (e.g. 0x00, 0x10).
FIRST_FAILURE_REASON = 0x80
#: a row refused again and again waits at most this many times ``retry_rejected_s``
MAX_REFUSED_HOLD_FACTOR = 8
#: refusal counts kept per row at most (rows deleted by eviction never report back)
_MAX_TRACKED_REFUSALS = 100_000


@dataclass(frozen=True)
class WindowSettings:
    """Limits of the delivery window (docs/spec.md §10, ``mqtt``)."""

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
class RefusalReport:
    """Refused publishes since the last report: one log line's worth."""

    count: int
    last_row_id: int
    last_reason: int
    held_for_s: float          # how long the last refused row waits before it is offered again


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
        self._refusals: Dict[int, int] = {}          # row_id -> refusals in a row
        self._unreported: Optional[RefusalReport] = None
        self._reported_at: Optional[float] = None
        #: the last failure reason code and when (``now``) it came, for ``status``
        self.last_rejected_reason: Optional[int] = None
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

    def released(self, now: float) -> bool:
        """True when a refused row's hold has ended since the last call (it may go again)."""
        ended = [row_id for row_id, until in self._rejected_until.items() if until <= now]
        for row_id in ended:
            del self._rejected_until[row_id]
        return bool(ended)

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
            self._refusals.pop(row_id, None)
            return AckResult(row_id, True, reason_code)
        self.rejected_total += 1
        self.last_rejected_reason = reason_code
        if len(self._refusals) >= _MAX_TRACKED_REFUSALS:
            self._refusals.clear()  # forget old counts rather than grow without bound
        times = self._refusals[row_id] = self._refusals.get(row_id, 0) + 1
        step = self.settings.retry_rejected_s
        # released on a multiple of retry_rejected_s: rows refused in one round come back
        # together, so the publisher reads them back in a few large reads, not one by one
        until = math.ceil((now + step * min(2 ** (times - 1), MAX_REFUSED_HOLD_FACTOR)) / step) * step
        hold = until - now
        self._rejected_until[row_id] = until
        count = self._unreported.count if self._unreported is not None else 0
        self._unreported = RefusalReport(count + 1, row_id, reason_code, hold)
        return AckResult(row_id, False, reason_code)

    def refusal_report(self, now: float) -> Optional[RefusalReport]:
        """Refusals not yet reported, at most once per ``retry_rejected_s`` (the first at once)."""
        if self._unreported is None or (
                self._reported_at is not None
                and now < self._reported_at + self.settings.retry_rejected_s):
            return None
        report, self._unreported, self._reported_at = self._unreported, None, now
        return report

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
        if self._unreported is not None and self._reported_at is not None:
            deadlines.append(self._reported_at + self.settings.retry_rejected_s)
        rate = self.settings.max_publish_rate
        if rate is not None and self._tokens < 1.0:
            deadlines.append(now + (1.0 - self._tokens) / rate)
        return min(deadlines) if deadlines else None

    @property
    def inflight(self) -> int:
        return len(self._inflight)

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


# --- reconnect back-off ---------------------------------------------------------------

@dataclass(frozen=True)
class BackoffSettings:
    """When to try the broker again after a failed attempt or a lost session (docs/spec.md §6)."""

    base_s: float = 0.5
    max_s: float = 60.0
    #: a session that stayed up this long (or saw a PUBACK) resets the back-off
    healthy_after_s: float = 10.0
    #: a critical event cuts a wait short at most once per this many seconds
    critical_gap_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.max_s:
            raise ValueError(f"back-off needs 0 < base_s <= max_s, not {self.base_s}, {self.max_s}")


class ReconnectBackoff:
    """Exponential back-off with full jitter, which a critical event can cut short.

    The shell calls :meth:`attempt_started` when it dials, then :meth:`attempt_failed`
    (no session) or :meth:`connected` ... :meth:`acked` (any PUBACK) ...
    :meth:`session_ended`. Between attempts it waits until :meth:`next_deadline`,
    calling :meth:`critical` when a critical event is recorded. ``rand()`` returns a
    number in [0, 1) (injected: tests pass a fixed one).

    Why a session resets the back-off only when it lasted ``healthy_after_s`` or saw
    a PUBACK: a broker that accepts and drops at once would otherwise be redialled
    without pause (a reconnect storm), while a broker that really works (it
    acknowledged something) must not leave us waiting a minute after each short cut.

    ``round_size`` is the number of broker endpoints tried in turn (docs/spec.md §12.1):
    every wait of a round (one try of each endpoint) has the same ceiling, which doubles
    only once the whole round failed, so moving to the next endpoint waits at most one
    step of the current round.
    """

    def __init__(self, settings: BackoffSettings, rand: Callable[[], float], *,
                 round_size: int = 1) -> None:
        if round_size < 1:
            raise ValueError(f"round_size must be at least 1, not {round_size}")
        self.settings = settings
        self._rand = rand
        self.round_size = round_size
        self.failures = 0                       # attempts or sessions failed in a row
        self._next: Optional[float] = 0.0       # None: an attempt or a session is under way
        self._connected_at: Optional[float] = None
        self._last_cut: Optional[float] = None
        self.last_wait_s = 0.0

    def due(self, now: float) -> bool:
        return self._next is not None and now >= self._next

    def next_deadline(self) -> Optional[float]:
        """When the next attempt is due; None while one is under way."""
        return self._next

    def attempt_started(self, now: float) -> None:
        self._next = None
        self._connected_at = None

    def attempt_failed(self, now: float) -> float:
        """No session came of the attempt (or it ended unhealthy); returns the wait."""
        self.failures += 1
        rounds_failed = (self.failures - 1) // self.round_size
        ceiling = min(self.settings.max_s, self.settings.base_s * 2.0 ** min(rounds_failed, 64))
        self.last_wait_s = ceiling * self._rand()
        self._next = now + self.last_wait_s
        self._connected_at = None
        return self.last_wait_s

    def connected(self, now: float) -> None:
        self._connected_at = now

    def acked(self, now: float) -> None:
        """A PUBACK arrived: the broker works, the back-off starts afresh."""
        self.failures = 0

    def session_ended(self, now: float) -> float:
        """The session is over; returns the wait before the next attempt."""
        started = self._connected_at
        if started is not None and now - started >= self.settings.healthy_after_s:
            self.failures = 0
            self.last_wait_s = 0.0
            self._next = now
            self._connected_at = None
            return 0.0
        return self.attempt_failed(now)

    def critical(self, now: float) -> bool:
        """A critical event was recorded: end the wait, at most once per ``critical_gap_s``
        (docs/spec.md §6). Returns True when the next attempt moved earlier."""
        if self._next is None:
            return False  # dialling or connected: the event goes out on this attempt
        earliest = now if self._last_cut is None else max(now, self._last_cut + self.settings.critical_gap_s)
        if earliest >= self._next:
            return False
        self._next = earliest
        self._last_cut = earliest
        return True


# --- incoming packet size (MQTT 3.1.1 cannot tell the broker a maximum) -------------------

@dataclass(frozen=True)
class OversizePacket:
    """The fixed header of an incoming packet over the limit (its body was never read)."""

    packet_type: int           # 3 = PUBLISH
    retain: bool               # a PUBLISH with the retain flag (sent again on every subscribe)
    length: int                # its remaining length, bytes


class IncomingSizeGuard:
    """Follows the broker-to-client byte stream and spots a packet over ``max_packet``
    from its fixed header alone, before anyone buffers the body (docs/spec.md §7).

    ``feed(data)`` takes the bytes as they are received, in order, and returns an
    :class:`OversizePacket` as soon as a remaining length over the limit is complete;
    the caller must then drop the connection (the stream cannot be resumed). Only the
    fixed header is read (type, flags, remaining length); the MQTT client parses the rest.
    """

    def __init__(self, max_packet: int) -> None:
        self.max_packet = max_packet
        self._first: Optional[int] = None   # first byte of the current packet's header
        self._length = 0
        self._shift = 0
        self._body_left = 0

    def feed(self, data: bytes) -> Optional[OversizePacket]:
        i, n = 0, len(data)
        while i < n:
            if self._body_left:
                step = min(self._body_left, n - i)
                self._body_left -= step
                i += step
            elif self._first is None:
                self._first, self._length, self._shift = data[i], 0, 0
                i += 1
            else:
                byte = data[i]
                i += 1
                self._length |= (byte & 0x7F) << self._shift
                self._shift += 7
                if byte & 0x80 and self._shift < 28:
                    continue
                first, self._first = self._first, None
                # fixed header (1 + up to 4 bytes) plus the body
                if self._length + 1 + self._shift // 7 > self.max_packet or byte & 0x80:
                    return OversizePacket(first >> 4, bool(first & 0x01) and first >> 4 == 3,
                                          self._length)
                self._body_left = self._length
        return None

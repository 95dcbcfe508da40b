"""The state of one ARC link: what is in flight, resends, supervision (docs/spec.md §12.2; sans-IO).

Theory of operation
-------------------
One frame is in flight at a time, so the receiver sees events in the order they were
submitted. The shell asks :meth:`ArcLink.next_frame` for bytes to write, writes them in
one call (or reports :meth:`write_failed`), and feeds what comes back to
:meth:`received`; :meth:`advance` ends a wait that ran past ``ack_timeout_s``. ``now``
is monotonic seconds, ``wall`` Unix seconds of our clock; the link never reads a clock.

- **ACK** (matching the frame's sequence number; encrypted on an encrypted link) ends the
  item: :class:`Delivered`. A late ACK of the same number during the back-off counts too.
- **DUH** (understood, not handled): :class:`Refused`, counted, never sent again. It
  proves the link alive but is no ACK: it neither counts as a miss nor restores the link.
- **NAK** or no answer: a miss; the same frame (same number, fresh timestamp) goes again
  after a back-off of 2, 4, 8 ... up to 60 s. A NAK whose time moves the receiver offset
  by :data:`OFFSET_STEP_S` or more is retried at once, with the new offset.
- **Offset**: the receiver's clock minus ours, learnt from every response that carries a
  time; frames use it while our clock is not synchronised (``ts_sync`` false) and for
  good after the first NAK that carried a time. The system clock is never set from it.
- **Supervision**: a NULL frame (with a number of its own) after ``supervision_s`` with
  nothing sent; a missed NULL is repeated after the back-off.
- :data:`MISSES_FOR_LOST` misses in a row (events or NULLs): :class:`LinkLost`; the next
  ACK: :class:`LinkRestored`. A newly submitted event ends a back-off wait.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, Hashable, List, Optional, Union

from agent.arc.codec import Codec, Response, ResponseError, next_seq
from agent.arc.codes import ArcMessage

DEFAULT_ACK_TIMEOUT_S = 10.0
DEFAULT_SUPERVISION_S = 600.0
FIRST_BACKOFF_S = 2.0
MAX_BACKOFF_S = 60.0
MISSES_FOR_LOST = 3
#: a NAK's time that moves the offset by this much is worth an immediate retry
OFFSET_STEP_S = 2.0

IDLE, WAITING, BACKOFF = "idle", "waiting", "backoff"
#: {state: {input: new state}}; an input not listed for a state is ignored or raises (below)
TRANSITIONS = {
    IDLE: {"send": WAITING},
    WAITING: {"ack": IDLE, "duh": IDLE, "nak": BACKOFF, "timeout": BACKOFF,
              "write_failed": BACKOFF},
    BACKOFF: {"send": WAITING, "ack": IDLE, "duh": IDLE},   # a late answer to the last try
}


@dataclass(frozen=True)
class LinkSettings:
    ack_timeout_s: float = DEFAULT_ACK_TIMEOUT_S
    supervision_s: float = DEFAULT_SUPERVISION_S    #: 0 = no NULL link tests
    max_backoff_s: float = MAX_BACKOFF_S

    def __post_init__(self) -> None:
        if self.ack_timeout_s <= 0 or self.supervision_s < 0 or self.max_backoff_s <= 0:
            raise ValueError("ack_timeout_s and max_backoff_s must be positive, supervision_s >= 0")


@dataclass(frozen=True)
class Outgoing:
    frame: bytes
    seq: int
    key: Optional[Hashable]     #: the submitted item; None for a NULL link test


@dataclass(frozen=True)
class Delivered:
    key: Hashable
    seq: int


@dataclass(frozen=True)
class Refused:
    key: Hashable
    seq: int
    kind: str = "DUH"


@dataclass(frozen=True)
class LinkLost:
    misses: int


@dataclass(frozen=True)
class LinkRestored:
    pass


LinkEvent = Union[Delivered, Refused, LinkLost, LinkRestored]


@dataclass
class _Item:
    key: Hashable
    message: ArcMessage
    seq: int = 0        # 0 until first sent; a retransmission keeps its number
    tries: int = 0


class ArcLink:
    """See the module docstring. ``now`` at construction starts the supervision period."""

    def __init__(self, codec: Codec, settings: LinkSettings, now: float) -> None:
        self.codec, self.settings = codec, settings
        self.state = IDLE
        self._queue: Deque[_Item] = deque()
        self._seq = 0
        self._flight: Optional[_Item] = None      # None while a NULL is in flight
        self._flight_seq = 0
        self._deadline = 0.0
        self._retry_at = now
        self._null_tries = 0
        self._null_due = now + settings.supervision_s
        self._used_offset = 0.0
        self.offset: Optional[float] = None   #: receiver clock minus ours, once learnt
        self.nak_seen = False
        self.misses = 0
        self.lost = False
        self.duh_count = 0
        self.bad_responses = 0
        self.last_ack_wall: Optional[float] = None

    @property
    def pending(self) -> int:
        return len(self._queue)

    def _go(self, event: str) -> None:
        self.state = TRANSITIONS[self.state][event]

    def submit(self, key: Hashable, message: ArcMessage, now: float) -> None:
        self._queue.append(_Item(key, message))
        self._retry_at = min(self._retry_at, now)       # a new alarm ends a back-off wait

    def next_frame(self, now: float, wall: float, clock_synced: bool) -> Optional[Outgoing]:
        """Bytes to write now, or None; the frame is in flight from this call on."""
        if self.state == WAITING:
            return None
        offset = self.offset if self.offset is not None and (
            self.nak_seen or not clock_synced) else 0.0
        if self._queue and now >= self._retry_at:
            item = self._queue[0]
            if not item.seq:
                item.seq = self._take_seq()
            frame = self.codec.event_frame(item.seq, item.message, wall, offset)
            self._flight, self._flight_seq = item, item.seq
        elif not self._queue and self.settings.supervision_s and now >= self._null_due:
            self._flight, self._flight_seq = None, self._take_seq()
            frame = self.codec.null_frame(self._flight_seq, wall, offset)
        else:
            return None
        self._used_offset = offset
        self._go("send")
        self._deadline = now + self.settings.ack_timeout_s
        return Outgoing(frame, self._flight_seq, None if self._flight is None else self._flight.key)

    def _take_seq(self) -> int:
        self._seq = next_seq(self._seq)
        return self._seq

    def write_failed(self, now: float) -> List[LinkEvent]:
        """The frame from :meth:`next_frame` could not be written (no connection)."""
        return self._miss(now, "write_failed") if self.state == WAITING else []

    def advance(self, now: float) -> List[LinkEvent]:
        if self.state == WAITING and now >= self._deadline:
            return self._miss(now, "timeout")
        return []

    def received(self, frame: bytes, now: float, wall: float) -> List[LinkEvent]:
        """One response frame from the receiver."""
        try:
            response = self.codec.parse_response(frame)
        except ResponseError:
            self.bad_responses += 1
            return []
        if response.receiver_time is not None:
            # the receiver writes whole seconds, rounded down: its clock is half a second on
            self.offset = float(round(response.receiver_time + 0.5 - wall))
        if response.kind == "NAK" and (response.seq in (0, self._flight_seq)):
            return self._nak(response, now)
        if response.seq != self._flight_seq or self.state == IDLE:
            return []                                   # stale: an answer to an older frame
        if response.kind == "ACK":
            if self.codec.settings.key is not None and not response.encrypted:
                self.bad_responses += 1                 # DC-09: an encrypted frame's ACK is encrypted
                return []
            return self._ack(now, wall)
        if response.kind == "DUH":
            return self._duh(now)
        self.bad_responses += 1                         # RSP: we ask nothing that needs one
        return []

    def _nak(self, response: Response, now: float) -> List[LinkEvent]:
        if self.state != WAITING:
            return []
        at_once = False
        if response.receiver_time is not None:
            self.nak_seen = True
            at_once = self.offset is not None and abs(self.offset - self._used_offset) >= OFFSET_STEP_S
        return self._miss(now, "nak", at_once=at_once)

    def _miss(self, now: float, event: str, *, at_once: bool = False) -> List[LinkEvent]:
        self._go(event)
        if self._flight is not None:
            self._flight.tries += 1
            tries = self._flight.tries
        else:
            self._null_tries += 1
            tries = self._null_tries
        delay = 0.0 if at_once else min(self.settings.max_backoff_s,
                                        FIRST_BACKOFF_S * 2 ** (tries - 1))
        if self._flight is not None:
            self._retry_at = now + delay
        else:
            self._null_due = now + delay
        self.misses += 1
        if self.misses >= MISSES_FOR_LOST and not self.lost:
            self.lost = True
            return [LinkLost(self.misses)]
        return []

    def _finish(self, now: float) -> Optional[_Item]:
        item = self._flight
        if item is not None and self._queue and self._queue[0] is item:
            self._queue.popleft()
        self._flight, self._flight_seq = None, 0
        self._retry_at = now
        self._null_tries = 0
        self._null_due = now + self.settings.supervision_s
        return item

    def _ack(self, now: float, wall: float) -> List[LinkEvent]:
        self._go("ack")
        item = self._finish(now)
        self.misses = 0
        self.last_ack_wall = wall
        events: List[LinkEvent] = []
        if item is not None:
            events.append(Delivered(item.key, item.seq))
        if self.lost:
            self.lost = False
            events.append(LinkRestored())
        return events

    def _duh(self, now: float) -> List[LinkEvent]:
        self._go("duh")
        item = self._finish(now)
        if item is None:
            return []
        self.duh_count += 1
        return [Refused(item.key, item.seq)]

    def next_deadline(self) -> Optional[float]:
        if self.state == WAITING:
            return self._deadline
        if self._queue:
            return self._retry_at
        return self._null_due if self.settings.supervision_s else None

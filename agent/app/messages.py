"""What reaches the agent's loop: typed messages on one queue, and the queue's sending side.

Other threads never touch the loop's state; they put one of these values on the
:class:`Inbox` and the loop takes them at its next turn (agent.app.loop). gpiozero's
callbacks put edges, the publisher's thread puts command payloads and delivery notices,
signal handlers put stops, and anyone may put a call to run once the loop has caught up.
``SimpleQueue.put`` is reentrant, so every ``submit_*`` is safe from a signal handler.
"""
from __future__ import annotations

import math
import queue
from dataclasses import dataclass
from typing import Callable, List, Sequence, Tuple, Union

#: a pin edge as drivers.pins.EdgeInput reports it: (sensor, level, monotonic time)
Edge = Tuple[str, bool, float]


@dataclass(frozen=True)
class EdgeMsg:
    """A pin changed level at ``at`` (monotonic seconds, stamped by the callback)."""

    sensor: str
    level: bool
    at: float

    def __post_init__(self) -> None:
        if not isinstance(self.level, bool) or not math.isfinite(self.at):
            raise ValueError(f"edge of {self.sensor!r}: level must be a bool and at a finite "
                             f"time, got {self.level!r} at {self.at!r}")


@dataclass(frozen=True)
class CommandMsg:
    """A command payload from the care centre, not yet checked (agent.remote)."""

    payload: bytes


@dataclass(frozen=True)
class DeliveredMsg:
    """Outbox rows the broker acknowledged (local feedback follows them)."""

    row_ids: Tuple[int, ...]


@dataclass(frozen=True)
class CallMsg:
    """Run ``fn`` in the loop after the turn's events are recorded."""

    fn: Callable[[], None]

    def __post_init__(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"CallMsg needs a callable, got {self.fn!r}")


@dataclass(frozen=True)
class StopMsg:
    """Leave the loop; ``reload`` asks the caller to build the agent again."""

    reload: bool = False


Message = Union[EdgeMsg, CommandMsg, DeliveredMsg, CallMsg, StopMsg]


class Inbox:
    """The loop's queue. Made before the loop, so the publisher and the pins can be given
    its sending side while the rest of the agent is still being assembled."""

    def __init__(self) -> None:
        self._queue: "queue.SimpleQueue[Message]" = queue.SimpleQueue()

    # --- the sending side: any thread ---------------------------------------------------------
    def submit_edge(self, edge: Edge) -> None:
        """gpiozero's callback target: hand the edge over, nothing else."""
        self._queue.put(EdgeMsg(*edge))

    def submit_command(self, payload: bytes) -> None:
        self._queue.put(CommandMsg(payload))

    def submit_delivered(self, row_ids: Sequence[int]) -> None:
        self._queue.put(DeliveredMsg(tuple(row_ids)))

    def submit_call(self, fn: Callable[[], None]) -> None:
        self._queue.put(CallMsg(fn))

    def request_stop(self, *, reload: bool = False) -> None:
        self._queue.put(StopMsg(reload))

    # --- the receiving side: the loop's thread ------------------------------------------------
    def get(self, timeout: float) -> List[Message]:
        """Wait up to ``timeout`` seconds for a message; return it and all queued after it."""
        try:
            messages = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        return messages + self.drain()

    def drain(self) -> List[Message]:
        """Everything queued now, without waiting."""
        out: List[Message] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def take_edges(self) -> List[Edge]:
        """Empty the queue, keeping only the edges (a reload hands them to the next loop)."""
        return [(m.sensor, m.level, m.at) for m in self.drain() if isinstance(m, EdgeMsg)]

"""How many ``command.rejected`` events a flood of bad commands may cause (docs/spec.md §7), with no I/O.

:class:`RejectionLimiter` lets 30 a minute through and sums up the rest in one more
event per minute, so nobody can fill the outbox or the uplink by sending junk to the
commands topic. Time is an argument (monotonic seconds); ``next_deadline()`` says when
the summary is due.
"""
from __future__ import annotations

import collections
from typing import Any, Deque, Dict, Optional


class RejectionLimiter:
    """At most ``limit`` ``command.rejected`` events per ``window_s``; the rest summarised.

    Sans-IO, ``now`` is monotonic seconds. Call :meth:`admit` for each rejection: True
    means send the ``command.rejected`` event now; False means it was counted instead.
    Counted rejections are reported at most once per window, by :meth:`poll` returning
    summary data ``{"suppressed": N, "reasons": {reason: count}}`` once
    :meth:`next_deadline` has been reached (the first suppression plus ``window_s``).
    The loop sends that as one more ``command.rejected`` event. Defaults: 30 a minute
    (docs/spec.md §7), a sliding window over the events actually sent.
    """

    def __init__(self, *, limit: int = 30, window_s: float = 60.0) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError(f"limit must be >= 1 and window_s > 0, got {limit!r}, {window_s!r}")
        self.limit = limit
        self.window_s = window_s
        self._sent: Deque[float] = collections.deque()
        self._suppressed: Dict[str, int] = {}
        self._summary_at: Optional[float] = None

    def __repr__(self) -> str:
        return (f"<RejectionLimiter {len(self._sent)}/{self.limit} in window, "
                f"{self.suppressed} suppressed>")

    @property
    def suppressed(self) -> int:
        """Rejections counted since the last summary."""
        return sum(self._suppressed.values())

    def admit(self, reason: str, now: float) -> bool:
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()
        if len(self._sent) < self.limit:
            self._sent.append(now)
            return True
        self._suppressed[reason] = self._suppressed.get(reason, 0) + 1
        if self._summary_at is None:
            self._summary_at = now + self.window_s
        return False

    def next_deadline(self) -> Optional[float]:
        """When :meth:`poll` next has a summary to give, or None."""
        return self._summary_at

    def poll(self, now: float, *, force: bool = False) -> Optional[Dict[str, Any]]:
        """The summary once it is due (or at once with ``force``, e.g. at shutdown)."""
        if self._summary_at is None or (now < self._summary_at and not force):
            return None
        summary: Dict[str, Any] = {"suppressed": self.suppressed,
                                   "reasons": dict(sorted(self._suppressed.items()))}
        self._suppressed.clear()
        self._summary_at = None
        return summary

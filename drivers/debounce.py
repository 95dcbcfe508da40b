"""Building blocks every sensor shares: a stable-for-N debouncer and a flapping detector.

Theory of operation
-------------------
Time inside the drivers is an integer number of **microseconds** (:data:`Micros`).
The public device classes take ``now`` as float monotonic seconds and convert once,
with :func:`to_micros`; every window is then a whole number of microseconds, so
``edge_time + window`` is exact and "a window that completes at the same instant as
a raw edge counts as completed" (docs/spec.md §3) holds without float surprises
(0.1 s + 0.2 s is exactly 0.3 s here).

:class:`Debouncer` is stable-for-N: the raw level must stay at a new value for that
value's window before it is *accepted*. Any raw edge restarts the wait; a pulse
shorter than the window simply vanishes. It does not know about time passing: the
owner asks :meth:`Debouncer.deadline` and calls :meth:`Debouncer.accept` once the
clock has reached it.

:class:`FlappingDetector` counts raw edges in a sliding window. The N-th edge within
``window_s`` starts an episode. The episode ends ``quiet_s`` after its last *burst*
edge: one with at least ceil(N / 4) raw edges within ``window_s``, itself included
(docs/spec.md §3), so an isolated glitch now and then cannot keep it open for ever.
An edge exactly ``window_s`` old has left the window (its window completed).

Neither class imports a clock, a thread or GPIO (STYLE.md pattern 1).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, Optional

#: Integer microseconds on the monotonic clock.
Micros = int

MICROS_PER_SECOND = 1_000_000


def to_micros(seconds: float) -> Micros:
    """Monotonic seconds (float) -> whole microseconds, rounded to nearest."""
    return int(round(seconds * MICROS_PER_SECOND))


def ms_to_micros(ms: float) -> Micros:
    """A configured window in milliseconds -> whole microseconds."""
    return int(round(ms * 1000))


def to_seconds(t: Micros) -> float:
    """Whole microseconds -> float seconds (round-trips through :func:`to_micros`)."""
    return t / MICROS_PER_SECOND


@dataclass(frozen=True)
class FlappingPolicy:
    """When a sensor counts as flapping (docs/spec.md §3, ``flapping:`` in the config).

    ``max_edges``: the N-th raw edge within ``window_s`` seconds starts an episode.
    ``quiet_s``: the episode ends this many seconds after its last burst edge
    (:attr:`burst_edges` raw edges within ``window_s``).
    """

    max_edges: int
    window_s: float
    quiet_s: float = 60.0

    def __post_init__(self) -> None:
        if isinstance(self.max_edges, bool) or not isinstance(self.max_edges, int) or self.max_edges < 2:
            raise ValueError(f"flapping.max_edges is {self.max_edges!r}; it must be a whole number of at least 2")
        for name in ("window_s", "quiet_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"flapping.{name} is {value!r}; it must be a number of seconds above 0")

    @property
    def burst_edges(self) -> int:
        """Raw edges within ``window_s`` that make an edge part of a burst: ceil(N / 4)."""
        return -(-self.max_edges // 4)


#: docs/spec.md §3 defaults. Smoke inputs have no flapping detection by default.
DOOR_FLAPPING = FlappingPolicy(max_edges=16, window_s=10, quiet_s=60)
SOS_FLAPPING = FlappingPolicy(max_edges=20, window_s=10, quiet_s=60)


def check_window_ms(name: str, value: float, *, minimum: float = 0) -> Micros:
    """Validate a configured window in ms and return it in microseconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= minimum:
        raise ValueError(f"{name} is {value!r}; it must be a number of milliseconds, at least {minimum:g}")
    return ms_to_micros(value)


def check_window_s(name: str, value: float) -> Micros:
    """Validate a configured time in seconds (above 0) and return it in microseconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} is {value!r}; it must be a number of seconds above 0")
    return to_micros(value)


class Debouncer:
    """Stable-for-N on one logical input, with a window per level (microseconds).

    ``raw`` is the last raw level seen; ``stable`` the last accepted one (``None``
    until the first acceptance); ``changed_at`` when ``raw`` last changed.
    """

    def __init__(self, active_us: Micros, inactive_us: Micros) -> None:
        if active_us < 0 or inactive_us < 0:
            raise ValueError("debounce windows cannot be negative")
        self.active_us = active_us
        self.inactive_us = inactive_us
        self.raw: Optional[bool] = None
        self.stable: Optional[bool] = None
        self.changed_at: Micros = 0

    def window(self, level: bool) -> Micros:
        return self.active_us if level else self.inactive_us

    def start(self, level: bool, t: Micros) -> None:
        """The level present at start-up; it still has to be steady for its window."""
        self.raw = level
        self.stable = None
        self.changed_at = t

    def edge(self, level: bool, t: Micros) -> bool:
        """A raw edge. Returns False (and changes nothing) if the level did not change."""
        if self.raw is None:
            raise RuntimeError("Debouncer.edge() before start()")
        if level == self.raw:
            return False
        self.raw = level
        self.changed_at = t
        return True

    def deadline(self) -> Optional[Micros]:
        """When ``raw`` will be accepted if no edge comes first; None if nothing pending."""
        if self.raw is None or self.raw == self.stable:
            return None
        return self.changed_at + self.window(self.raw)

    def accept(self, t: Micros) -> bool:
        """Accept ``raw``; only legal once the clock ``t`` has reached :meth:`deadline`."""
        due = self.deadline()
        if due is None or due > t:
            raise RuntimeError(f"nothing to accept at {t} us (deadline {due})")
        assert self.raw is not None
        self.stable = self.raw
        return self.raw


class FlappingDetector:
    """Sliding-window edge counter with a quiet period (see module docstring)."""

    def __init__(self, policy: FlappingPolicy) -> None:
        self.policy = policy
        self.window_us: Micros = to_micros(policy.window_s)
        self._quiet_us = to_micros(policy.quiet_s)
        self._edges: Deque[Micros] = deque()
        self.flapping = False
        #: the episode's last burst edge; the episode ends ``quiet_s`` after it
        self.last_burst: Optional[Micros] = None

    def edge(self, t: Micros) -> bool:
        """Count a raw edge. True exactly when this edge starts a flapping episode."""
        # Counting goes on during an episode: it tells burst edges from lone glitches.
        self._edges.append(t)
        while self._edges and self._edges[0] <= t - self.window_us:
            self._edges.popleft()
        if self.flapping:
            if len(self._edges) >= self.policy.burst_edges:
                self.last_burst = t
            return False
        if len(self._edges) >= self.policy.max_edges:
            self.flapping = True
            self.last_burst = t
            return True
        return False

    def edges_in_window(self) -> int:
        return len(self._edges)

    def deadline(self) -> Optional[Micros]:
        """When the current episode ends if no burst edge comes first; None if not flapping."""
        if not self.flapping or self.last_burst is None:
            return None
        return self.last_burst + self._quiet_us

    def recover(self, t: Micros) -> None:
        """End the episode; only legal once the clock ``t`` has reached :meth:`deadline`."""
        due = self.deadline()
        if due is None or due > t:
            raise RuntimeError(f"not flapping-quiet at {t} us (deadline {due})")
        self.flapping = False
        # a new episode counts only its own edges, none of the one that just ended
        self._edges.clear()

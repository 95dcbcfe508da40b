"""The outbox as the running agent holds it: open from the start, or opened later.

An outbox that cannot be opened at start is a degraded mode (docs/spec.md §6): the
recorder tries again every few seconds through :meth:`OutboxSlot.open`. The slot is the
one place that knows which outbox is open, for the status reader and for the close.
"""
from __future__ import annotations

from typing import Callable, Optional

from agent.outbox.store import Outbox


class OutboxSlot:
    def __init__(self, opener: Callable[[], Outbox]) -> None:
        self._opener = opener
        #: the open outbox, None while it cannot be opened
        self.current: Optional[Outbox] = None

    def open(self) -> Outbox:
        """Open the outbox (raises as ``Outbox.open`` does) and keep it as :attr:`current`."""
        self.current = self._opener()
        return self.current

    def close(self) -> None:
        if self.current is not None:
            self.current.close()

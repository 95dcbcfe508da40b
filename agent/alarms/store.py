"""Saving the alarm book in ``state_dir`` so that open alarms survive a restart or a
power cut (docs/spec.md §11): one durable write per change, as for the counters.

A file that cannot be read back as a book is moved aside (``alarms.json.bad-<n>``) and
reported by the caller; the agent then starts with an empty book instead of
crash-looping.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Optional, Tuple, Union

from agent.alarms.book import AlarmBook, AlarmSchedule
from agent.files.durable import write_durably

log = logging.getLogger(__name__)

FILE_NAME = "alarms.json"
#: a damaged alarm file is set aside, never parsed in full: more is not an alarm book
MAX_BYTES = 1 << 20


class AlarmStore:
    """Loads and saves one :class:`AlarmBook` as ``{state_dir}/alarms.json``."""

    def __init__(self, state_dir: Union[str, "os.PathLike[str]"]) -> None:
        self.path = Path(state_dir) / FILE_NAME

    def __repr__(self) -> str:
        return f"<AlarmStore {self.path}>"

    def load(self, schedule: AlarmSchedule, *, now: float,
             wall: float) -> Tuple[AlarmBook, Optional[str]]:
        """The saved book (an empty one on a first start), and the reason it was set
        aside when the file was damaged (None otherwise)."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            return AlarmBook(schedule), None
        try:
            if len(raw) > MAX_BYTES:
                raise ValueError(f"larger than {MAX_BYTES} bytes")
            return AlarmBook.restore(json.loads(raw), schedule, now=now, wall=wall), None
        except ValueError as exc:    # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            reason = f"{self.path.name}: {exc}"
            aside = self._set_aside()
            log.error("open alarms could not be read (%s); moved to %s, starting with none",
                      reason, aside.name if aside else "nowhere (could not move it)")
            return AlarmBook(schedule), reason

    def save(self, book: AlarmBook, *, now: float, wall: float) -> None:
        data = json.dumps(book.to_data(now=now, wall=wall), separators=(",", ":"), sort_keys=True)
        write_durably(self.path, data.encode("ascii"))

    def _set_aside(self) -> Optional[Path]:
        for n in range(1, 1000):
            aside = self.path.with_name(f"{self.path.name}.bad-{n}")
            if not aside.exists():
                try:
                    os.replace(self.path, aside)
                except OSError:
                    return None
                return aside
        return None

"""Saving the replay store (seen command ``jti`` values) in ``state_dir``.

The file is ``{state_dir}/seen-commands.json``::

    {"version": 2, "floor": 1764300000, "seen": [{"jti": "…", "exp": 1764339471}, …]}

(``floor``: see :class:`agent.remote.policy.SeenCommands`; a version-1 file, without
it, is read with floor 0.)

It is replaced atomically (write a temporary file, fsync, rename, fsync the directory),
so a power cut leaves either the old or the new list, never half of one. Save *before*
carrying out an accepted command (``Decision.remembered``), otherwise a power cut right
after the command could let the same command be replayed.

A file that cannot be read as that format is moved aside to
``seen-commands.json.corrupt`` and the agent goes on with an empty store (instead of
crash-looping); :attr:`CommandStore.quarantined` says so, for the loop to log and report.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Union

from agent.files.durable import write_durably
from agent.remote.policy import SEEN_CAPACITY, SeenCommands

FILENAME = "seen-commands.json"
FORMAT_VERSION = 2


class CommandStore:
    """The file shell around :class:`agent.remote.policy.SeenCommands`."""

    def __init__(self, state_dir: Union[str, "os.PathLike[str]"], *,
                 capacity: int = SEEN_CAPACITY) -> None:
        self.path = Path(state_dir) / FILENAME
        self.capacity = capacity
        #: where a corrupt file was moved by the last :meth:`load`, if it was
        self.quarantined: Optional[Path] = None

    def __repr__(self) -> str:
        return f"<CommandStore {self.path}>"

    def load(self) -> SeenCommands:
        """The saved store, or an empty one if there is none (or it was corrupt)."""
        self.quarantined = None
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return SeenCommands(capacity=self.capacity)
        try:
            doc = json.loads(raw.decode("utf-8"))
            if not isinstance(doc, dict) or doc.get("version") not in (1, FORMAT_VERSION) \
                    or not isinstance(doc.get("seen"), list):
                raise ValueError("not a version-1 or -2 replay store")
            return SeenCommands.from_records(doc["seen"], capacity=self.capacity,
                                             floor=doc.get("floor", 0))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            aside = self.path.with_name(FILENAME + ".corrupt")
            os.replace(self.path, aside)
            self.quarantined = aside
            return SeenCommands(capacity=self.capacity)

    def save(self, seen: SeenCommands) -> None:
        """Atomically replace the file with ``seen``; durable when this returns."""
        body = json.dumps({"version": FORMAT_VERSION, "floor": seen.floor,
                           "seen": seen.to_records()},
                          separators=(",", ":")).encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_durably(self.path, body)

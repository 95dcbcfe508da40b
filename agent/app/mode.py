"""Away mode at run time (docs/spec.md §14.3): the saved mode and the ``mode`` command.

The rules' :class:`~agent.rules.mode.ModeGate` keeps no file; :class:`HomeMode` is the
one owner of ``state_dir/mode``: it reads it at start (a missing or unreadable file is
``home``: the rules on is the safer error) and writes it durably on each change,
before ``agent.mode`` is recorded, so a restart keeps what the care centre set.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, List

from agent.files.durable import write_durably
from agent.record.recognised import AgentEvent
from agent.rules.mode import HOME, MODES, ModeGate

log = logging.getLogger("agent.mode")

MODE_FILE = "mode"


def load_mode(state_dir: Path) -> str:
    """The saved mode; ``home`` when there is none or it cannot be read."""
    try:
        text = (state_dir / MODE_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return HOME
    except OSError as exc:
        log.warning("cannot read the saved mode (%s); starting at home", exc)
        return HOME
    if text not in MODES:
        log.warning("saved mode %r is not one of %s; starting at home", text, MODES)
        return HOME
    return text


class HomeMode:
    """Sets the gate's mode for the ``mode`` command and keeps it in ``state_dir``."""

    def __init__(self, gate: ModeGate, state_dir: Path, *, wall: Callable[[], float],
                 synced: Callable[[], bool]) -> None:
        self.gate, self._dir, self._wall, self._synced = gate, state_dir, wall, synced

    def set(self, mode: str, now: float) -> List[AgentEvent]:
        """Switch to ``mode`` (already checked); ``agent.mode`` only when it changed."""
        wall = self._wall()
        if not self.gate.set_mode(mode, now, wall, self._synced()):
            return []
        try:
            write_durably(self._dir / MODE_FILE, mode.encode("utf-8"))
        except OSError as exc:  # the mode still holds until the next restart
            log.error("cannot save the mode %s (%s); a restart would start at the old one",
                      mode, exc)
        return [AgentEvent("agent.mode", now, {"mode": mode})]

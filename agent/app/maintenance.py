"""The maintenance period in the running agent: saved in ``state_dir``, told to the switches.

:class:`agent.alarms.maintenance.Maintenance` keeps the period (sans-IO); this shell
saves it as ``{state_dir}/maintenance.json`` (one durable write per change, so it
survives a restart), sets every tamper switch to the period's state, and is a timer of
the loop (``advance(now)`` / ``next_deadline()``) so the period ends by itself. The
switches' own events (a box still open when the period ends is reported again,
critical) come back with the maintenance events, to be recorded in the same batch.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence, Union

from agent.alarms.maintenance import Maintenance, parse_maintenance_args
from agent.files.durable import write_durably
from agent.record.recognised import Recognised
from drivers.tamper import TamperSwitch

log = logging.getLogger("agent.maintenance")

FILE_NAME = "maintenance.json"
_MAX_BYTES = 4096


class MaintenanceMode:
    """The loop's maintenance timer and the ``maintenance`` command's effect."""

    def __init__(self, state_dir: Union[str, "os.PathLike[str]"], switches: Sequence[TamperSwitch],
                 *, clock: Callable[[], float], wall: Callable[[], float]) -> None:
        self.path = Path(state_dir) / FILE_NAME
        self._switches = list(switches)
        self._clock, self._wall = clock, wall
        self.core = self._load()
        self._tell_switches(self._clock())   # before the switches start: a restart mid-visit

    def __repr__(self) -> str:
        return f"<MaintenanceMode {self.core!r} {len(self._switches)} switch(es)>"

    @property
    def active(self) -> bool:
        return self.core.active

    def command(self, args: Any, now: float) -> List[Recognised]:
        """The accepted ``maintenance`` command (its args already checked by the policy)."""
        out: List[Recognised] = list(self.core.command(parse_maintenance_args(args), now,
                                                      self._wall()))
        if out:
            self._save(now)
        return out + self._tell_switches(now)

    def advance(self, now: float) -> List[Recognised]:
        out: List[Recognised] = list(self.core.advance(now))
        if out:
            self._save(now)
            out += self._tell_switches(now)
        return out

    def next_deadline(self) -> Optional[float]:
        return self.core.next_deadline()

    def _tell_switches(self, now: float) -> List[Recognised]:
        out: List[Recognised] = []
        for switch in self._switches:
            out += switch.set_maintenance(self.core.active, now)
        return out

    def _load(self) -> Maintenance:
        try:
            with open(self.path, "rb") as f:
                raw = f.read(_MAX_BYTES + 1)
        except FileNotFoundError:
            return Maintenance()
        except OSError as exc:
            log.error("cannot read %s (%s); starting without a maintenance period", self.path, exc)
            return Maintenance()
        try:
            if len(raw) > _MAX_BYTES:
                raise ValueError(f"larger than {_MAX_BYTES} bytes")
            return Maintenance.restore(json.loads(raw), now=self._clock(), wall=self._wall())
        except ValueError as exc:   # a damaged file: no period (tamper alarms stay on)
            log.error("%s is damaged (%s); starting without a maintenance period; "
                      "send a new maintenance command if a visit is going on", self.path, exc)
            return Maintenance()

    def _save(self, now: float) -> None:
        data = json.dumps(self.core.to_data(now=now, wall=self._wall()), sort_keys=True)
        try:
            write_durably(self.path, data.encode("ascii"))
        except OSError as exc:   # the period still holds in memory; it just won't survive a restart
            log.error("cannot save %s (%s); the maintenance period will not survive a restart",
                      self.path, exc)

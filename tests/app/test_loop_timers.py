"""AgentLoop(timers=): a timer's deadline wakes the loop and its events are recorded."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from agent.app.loop import AgentLoop
from agent.app.maintenance import MaintenanceMode
from tests.app.test_loop import Clock, rig, types  # noqa: F401  (rig is a fixture)


def test_the_maintenance_timer_ends_the_period_in_the_loop(rig: Dict[str, Any],  # noqa: F811
                                                           tmp_path: Path) -> None:
    loop: AgentLoop = rig["loop"]
    clock: Clock = rig["clock"]
    mode = MaintenanceMode(tmp_path, [], clock=clock, wall=lambda: 1.8e9 + clock.now)
    loop.timers = [mode]
    loop.start()
    loop.record(mode.command({"minutes": 2}, clock.now))
    end = clock.now + 120
    while clock.now < end - 0.1:           # the loop's own deadlines (re-reads) come first
        clock.now = min(loop.next_deadline(), end - 0.1)
        loop.turn([])
    assert loop.next_deadline() == end     # the timer's deadline wakes the loop
    assert "maintenance.ended" not in types(rig["outbox"])
    clock.now = end
    loop.turn([])
    assert types(rig["outbox"])[-1] == "maintenance.ended"
    assert "maintenance.started" in types(rig["outbox"])

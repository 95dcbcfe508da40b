"""`homecare-agent simulate --config F --timeline T [--timeout S] [--speed X]` (docs/spec.md §8).

Exit 0 once the timeline is over and the outbox is empty; at the timeout, 3 if events
are still buffered, else 0.
"""
from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType
from typing import Optional

from agent.config.model import load_config
from agent.errors import ConfigError
from drivers.timeline import TimelineError, load_timeline


def main(args: argparse.Namespace) -> int:
    from agent.sim.simulation import Simulation, timeline_inputs

    config = load_config(args.config)
    try:
        entries = load_timeline(args.timeline, timeline_inputs(config))
    except TimelineError as exc:
        raise ConfigError(str(exc)) from None
    sim = Simulation(config, entries, speed=args.speed)

    def on_term(signum: int, frame: Optional[FrameType]) -> None:
        sim.stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    result = sim.run(args.timeout)
    print(f"simulate: {result.applied} timeline entries applied; {result.recorded} events "
          f"recorded, {result.delivered} delivered, {result.buffered} still buffered"
          f"{'' if result.timeline_over else ' (timeout before the timeline was over)'}",
          file=sys.stdout, flush=True)
    return result.exit_status

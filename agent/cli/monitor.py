"""`homecare-agent monitor --config PATH`: every sensor's raw and debounced level, live.

For commissioning on site: press the button, open the door, press the smoke
detector's test button, and watch each line change. A Form C smoke sensor's NC
contact has its own lines (``kitchen_smoke.nc``), and its events show both contacts. The monitor claims the pins
itself and feeds the same state machines through the same
:class:`~agent.app.sensors.Sensors` as the daemon's loop (with its pin re-read), but
signs and sends nothing, so
stop the service first (``sudo systemctl stop homecare-agent``); a pin already in use
is reported as such. Ctrl-C ends it.
"""
from __future__ import annotations

import argparse
import queue
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, Dict, Iterable, Optional, TextIO

from agent.app.assemble import state_machine
from agent.app.sensors import Sensors
from agent.config.model import Config, load_config
from drivers.events import SensorEvent
from drivers.pins import EdgeInput, make_pin_factory


def main(args: argparse.Namespace, *, pin_factory: Any = None, out: TextIO = sys.stdout,
         run_for_s: Optional[float] = None, stop_event: Optional[threading.Event] = None) -> int:
    """Show every edge and debounced event until Ctrl-C / SIGTERM.

    For tests and scripts: ``run_for_s`` ends it after that many seconds, ``stop_event``
    when set (checked at least every 0.1 s); with either, no signal handler is installed
    (so it may run in a thread). A pin that cannot be claimed is a
    :class:`~agent.errors.WiringError` naming the sensor and the GPIO, and every pin
    already claimed is released again.
    """
    config = load_config(args.config)
    factory = pin_factory if pin_factory is not None else make_pin_factory(
        config.gpio.backend, chip=config.gpio.chip, board_revision=config.gpio.board_revision)
    edges: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
    machines: Dict[str, Any] = {}
    inputs: Dict[str, EdgeInput] = {}
    stop = {"now": False}

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        stop["now"] = True
        edges.put(None)

    if run_for_s is None and stop_event is None:
        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
    try:
        _claim(config, factory, edges, machines, inputs)
        screen = _Screen(out, Sensors(machines, inputs), time.monotonic())
        print(f"monitoring {len(machines)} sensors (Ctrl-C to stop); raw = pin now, "
              "state = after debouncing", file=out, flush=True)
        screen.show(screen.sensors.start(time.monotonic()))
        end = None if run_for_s is None else screen.t0 + run_for_s
        while not stop["now"] and not (stop_event is not None and stop_event.is_set()):
            wait = 1.0 if stop_event is None else 0.1
            if end is not None:
                if time.monotonic() >= end:
                    break
                wait = min(wait, end - time.monotonic())
            screen.turn(edges, wait)
    finally:
        for pin in inputs.values():
            pin.close()
    return 0


def _claim(config: Config, factory: Any, edges: "queue.SimpleQueue[Any]",
           machines: Dict[str, Any], inputs: Dict[str, EdgeInput]) -> None:
    """A state machine and a claimed pin per sensor, into ``machines`` and ``inputs``
    (those claimed before a failure are in ``inputs``, for the caller to release)."""
    for s in config.sensors:
        machines[s.name] = state_machine(s)
        inputs[s.name] = EdgeInput(s.name, s.pin, pull=s.pull, active=s.active, sink=edges,
                                   pin_factory=factory)
        if s.nc_input is not None and s.pin_nc is not None:   # Form C: the NC contact's own line
            inputs[s.nc_input] = EdgeInput(s.nc_input, s.pin_nc, pull=s.pull, active=s.active,
                                           sink=edges, pin_factory=factory)


class _Screen:
    """One monitor: the sensors, fed as the daemon's loop feeds them, and what is printed."""

    def __init__(self, out: TextIO, sensors: Sensors, t0: float) -> None:
        self.out, self.sensors, self.t0 = out, sensors, t0

    def turn(self, edges: "queue.SimpleQueue[Any]", wait_s: float) -> None:
        """Wait for an edge or the next deadline (at most ``wait_s``), then show what it made."""
        deadline = self.sensors.next_deadline()
        if deadline is not None:
            wait_s = min(wait_s, deadline - time.monotonic())
        try:
            item = edges.get(timeout=max(0.0, wait_s))
        except queue.Empty:
            item = None
        now = time.monotonic()
        if item is not None:
            name, level, at = item
            self._line(at, name, f"raw -> {_word(level)}")
            self.show(self.sensors.edge(name, level, at))
        self.show(self.sensors.advance(now))
        if self.sensors.reread_due(now) and edges.empty():
            # like the daemon: a level no callback reported is a lost edge
            for fix in self.sensors.reread(now):
                self._line(now, fix.sensor, f"raw -> {_word(fix.level)} "
                           "(read back: no edge was reported; check the wiring)")
                self.show(fix.events)

    def show(self, events: Iterable[SensorEvent]) -> None:
        for e in events:
            extra = ", ".join(f"{k}={v}" for k, v in e.data.items() if k != "state")
            state = self.sensors.state(e.sensor)
            contacts = "" if state.raw_nc is None else \
                f" no={_word(state.raw)} nc={_word(state.raw_nc)}"   # both contacts of a Form C relay
            self._line(e.at, e.sensor, f"{e.type:18} state={state.state}{contacts}"
                       + (f" ({extra})" if extra else ""))

    def _line(self, at: float, sensor: str, text: str) -> None:
        print(f"{at - self.t0:9.3f}s  {sensor:14} {text}", file=self.out, flush=True)


def _word(level: bool) -> str:
    return "active" if level else "inactive"

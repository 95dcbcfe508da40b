"""`homecare-agent monitor --config PATH`: every sensor's raw and debounced level, live.

For commissioning on site: press the button, open the door, press the smoke
detector's test button, and watch each line change. The monitor claims the pins
itself and runs the same debouncers as the daemon, but signs and sends nothing, so
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
from typing import Any, Dict, Optional, TextIO

from agent.config.model import load_config
from agent.app.assemble import state_machine
from agent.app.loop import PIN_REREAD_S
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
    factory = pin_factory if pin_factory is not None else make_pin_factory(config.gpio.backend)
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
        for s in config.sensors:
            machines[s.name] = state_machine(s)
            inputs[s.name] = EdgeInput(s.name, s.pin, pull=s.pull, active=s.active, sink=edges,
                                       pin_factory=factory)
        t0 = time.monotonic()
        print(f"monitoring {len(inputs)} sensors (Ctrl-C to stop); raw = pin now, "
              "state = after debouncing", file=out, flush=True)
        for name, pin in inputs.items():
            _show(out, t0, machines[name].start(pin.read(), time.monotonic()), machines, name)
        end = None if run_for_s is None else t0 + run_for_s
        next_reread = t0 + PIN_REREAD_S
        while not stop["now"] and not (stop_event is not None and stop_event.is_set()):
            now = time.monotonic()
            deadlines = [d for d in (m.next_deadline() for m in machines.values()) if d is not None]
            wait = min([1.0 if stop_event is None else 0.1] + [d - now for d in deadlines])
            if end is not None:
                if now >= end:
                    break
                wait = min(wait, end - now)
            try:
                item = edges.get(timeout=max(0.0, wait))
            except queue.Empty:
                item = None
            now = time.monotonic()
            if item is not None:
                name, level, at = item
                print(f"{at - t0:9.3f}s  {name:14} raw -> {'active' if level else 'inactive'}",
                      file=out, flush=True)
                _show(out, t0, machines[name].edge(level, at), machines, name)
            for name, machine in machines.items():
                _show(out, t0, machine.advance(now), machines, name)
            if now >= next_reread and edges.empty():
                # like the daemon: a level no callback reported is a lost edge
                next_reread = now + PIN_REREAD_S
                for name, pin in inputs.items():
                    level = pin.read()
                    if level != machines[name].raw:
                        print(f"{now - t0:9.3f}s  {name:14} raw -> "
                              f"{'active' if level else 'inactive'} (read back: no edge was "
                              "reported; check the wiring)", file=out, flush=True)
                        _show(out, t0, machines[name].edge(level, now), machines, name)
    finally:
        for pin in inputs.values():
            pin.close()
    return 0


def _show(out: TextIO, t0: float, events: Any, machines: Dict[str, Any], name: str) -> None:
    for e in events:
        extra = ", ".join(f"{k}={v}" for k, v in e.data.items() if k != "state")
        print(f"{e.at - t0:9.3f}s  {e.sensor:14} {e.type:18} state={machines[e.sensor].state}"
              + (f" ({extra})" if extra else ""), file=out, flush=True)

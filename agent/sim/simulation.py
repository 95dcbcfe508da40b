"""The full agent on mock pins, driven by a timeline on a virtual clock (``simulate``, ``demo``).

Everything but the pins is real: the same state machines, signing, outbox, publisher
and broker. The :class:`~drivers.timeline.VirtualClock` is the agent's clock, so
debounce windows, heartbeats and events' ``ts`` all run ``speed`` times faster than
the wall clock, and ``ts`` is the start time plus timeline time.

The timeline is over when its last entry has been applied and every debounce window
it opened has closed (start-up reports included). Stuck and flapping-quiet timers are
not waited for (docs/spec.md §8).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from agent.config.model import Config, SensorConfig
from agent.app.daemon import Agent
from agent.app.loop import Stop
from agent.app.sdnotify import Notifier
from drivers.timeline import TimelineDriver, TimelineEntry, VirtualClock, Wiring

log = logging.getLogger("agent.simulate")

#: exit status when the timeout came with events still in the outbox
EXIT_BUFFERED = 3


def window_after_s(sensor: SensorConfig, level: bool, *, at_start: bool,
                   ever_active: bool) -> float:
    """How long after its last timeline level a sensor may still report (seconds).

    The window that level opened: pressed/released, open/closed, alarm confirmation.
    For smoke going inactive it is the 15 s clear window if the sensor was ever active
    in the timeline (it may be clearing an alarm), else just ``pulse_ms`` (docs/spec.md §3:
    the start-up report of an inactive smoke input comes after ``pulse_ms``).
    """
    ms: float
    if sensor.kind == "sos_button":
        ms = sensor.debounce_ms + (sensor.hold_ms if level else 0)
    elif sensor.kind in ("door", "tamper"):
        ms = sensor.open_ms if level else sensor.close_ms
    elif sensor.kind == "battery":
        ms = sensor.low_ms if level else sensor.ok_ms
    elif sensor.kind == "mains":   # the longest delay the jitter can draw
        ms = 1000 * (sensor.report_delay_s + sensor.jitter_s if level else sensor.restore_delay_s)
    elif level:
        ms = max(sensor.confirm_ms, sensor.pulse_ms)
    else:
        ms = sensor.clear_ms if ever_active and not at_start else sensor.pulse_ms
    if sensor.pin_nc is not None:  # any change of either contact may end in a wiring fault
        ms = max(ms, sensor.wiring_fault_ms)
    return ms / 1000.0


def timeline_inputs(config: Config) -> List[str]:
    """What a timeline's ``sensor:`` may name: every sensor, and each NC contact (``name.nc``)."""
    names = [s.name for s in config.sensors]
    return names + [s.nc_input for s in config.sensors if s.nc_input is not None]


@dataclass(frozen=True)
class SimulationResult:
    exit_status: int
    applied: int
    recorded: int
    delivered: int
    buffered: int
    timeline_over: bool


class Simulation:
    """Build the agent on a MockFactory; :meth:`run` plays the timeline and waits."""

    def __init__(self, config: Config, entries: Sequence[TimelineEntry], *,
                 speed: float = 1.0) -> None:
        from gpiozero.pins.mock import MockFactory

        self.config = config
        self.clock = VirtualClock(speed)
        self.factory = MockFactory()
        self.agent = Agent.build(config, pin_factory=self.factory, clock=self.clock.mono,
                                 wall=self.clock.wall, notifier=Notifier(None))
        wiring: Dict[str, Wiring] = {}
        for s in config.sensors:
            wiring[s.name] = Wiring(self.factory.pin(s.pin), s.active_high, nc=s.nc_input)
            if s.nc_input is not None:
                wiring[s.nc_input] = Wiring(self.factory.pin(s.pin_nc), s.active_high)
        self.driver = TimelineDriver(entries, wiring, self.clock)
        self._stop = threading.Event()
        self._loop_result: Optional[Stop] = None
        self._crashed = False

    def end_time(self) -> float:
        """Timeline time at which every window the timeline opened has closed."""
        ends = [0.0]
        for sensor in self.config.sensors:
            mine = [e for e in self.driver.entries if e.sensor in (sensor.name, sensor.nc_input)]
            last = mine[-1] if mine else None
            level = last.level if last is not None else False
            at = last.at if last is not None else 0.0
            ends.append(at + window_after_s(sensor, level, at_start=at == 0,
                                            ever_active=any(e.level for e in mine)))
        return max(ends) + 0.001

    def stop(self) -> None:
        """Safe from a signal handler."""
        self._stop.set()
        self.agent.loop.request_stop()

    def run(self, timeout_s: float, *, wait_for_delivery: bool = True) -> SimulationResult:
        """Play the timeline; then (unless told not to) wait until the outbox is empty."""
        deadline = time.monotonic() + timeout_s
        self.clock.restart()
        self.driver.apply_start_levels()
        started = threading.Event()
        self.agent.loop.submit_call(started.set)      # runs after the loop's start-up
        loop_thread = threading.Thread(target=self._run_loop, name="agent-loop", daemon=True)
        loop_thread.start()
        if not started.wait(30):
            log.error("the agent did not start")
        self.driver.release_start()
        over = self.driver.run(self._stop) and self._wait_for(self.end_time(), deadline)
        empty = over and self._wait_until_delivered(
            deadline if wait_for_delivery else time.monotonic())
        self.agent.loop.request_stop()
        loop_thread.join(10)
        status = self.agent.status
        buffered, delivered, recorded = status.buffered(), status.link().delivered, status.recorded()
        self.agent.close(flush_timeout_s=1.0 if not empty else 3.0)
        # docs/spec.md §8: exit 0 once the buffer was empty; what timers the timeline does
        # not wait for (alarm reminders) recorded after that stays stored for the next run
        exit_status = 1 if self._crashed else (0 if empty or buffered == 0 else EXIT_BUFFERED)
        if not over:
            log.warning("the timeout came before the timeline was over")
        return SimulationResult(exit_status, self.driver.applied, recorded, delivered, buffered, over)

    def _run_loop(self) -> None:
        try:
            self._loop_result = self.agent.run()
        except BaseException:
            log.exception("the agent's loop failed")
            self._crashed = True
            self._stop.set()

    def _wait_for(self, at: float, deadline: float) -> bool:
        remaining_real = (at - self.clock.mono()) / self.clock.speed
        if time.monotonic() + remaining_real > deadline:
            self._stop.wait(max(0.0, deadline - time.monotonic()))
            return False
        return self.clock.sleep_until(at, self._stop)

    def _wait_until_delivered(self, deadline: float) -> bool:
        caught_up = threading.Event()
        self.agent.loop.submit_call(caught_up.set)   # its events up to now are recorded
        if not caught_up.wait(max(0.0, deadline - time.monotonic())):
            return False
        while not self._stop.is_set():
            status = self.agent.status
            if status.buffered() == 0 and status.link().inflight == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            self._stop.wait(0.05)
        return False

"""A SIGHUP reload loses no edge (docs/spec.md §9): the whole agent on MockFactory pins and
the real test mosquitto, reloaded the way `homecare-agent run` does it
(:meth:`agent.app.daemon.Agent.replace`), with an SOS tap while the old agent closes."""
from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from agent.cli.run import FLUSH_ON_RELOAD_S
from agent.config.model import Config
from agent.app.daemon import Agent
from tests.broker import MosquittoBroker
from tests.helpers import assert_unique_boot_seq
from tests.integration.agent_harness import SOS_PIN, AgentHarness

pytestmark = pytest.mark.broker

TAP_S = 0.4


class TapWhileClosing:
    """Taps the SOS button when the old agent begins to close (the window in which the
    pins used to be let go): :meth:`arm` wraps that agent's own ``close``."""

    def __init__(self, pin: Any) -> None:
        self.pin = pin
        self.taps = 0

    def arm(self, agent: Agent) -> None:
        real_close = agent.close

        def close(*args: Any, **kwargs: Any) -> bool:
            if self.taps == 0:
                self.taps += 1
                self.pin.drive_low()
                time.sleep(TAP_S)       # the length of the tap is the input, nothing is awaited
                self.pin.drive_high()
            return real_close(*args, **kwargs)

        agent.close = close  # type: ignore[method-assign]


class PinClaims:
    """Records when the real MockFactory reserves and releases one pin (a spy, the factory
    still does the work), to measure how long the pin was owned by nobody."""

    def __init__(self, factory: Any, pin: int) -> None:
        self.names = {str(pin), f"GPIO{pin}", f"BCM{pin}"}
        self.log: List[Tuple[str, float]] = []
        reserve, release = factory.reserve_pins, factory.release_pins

        def spy_reserve(requester: Any, *names: Any) -> None:
            reserve(requester, *names)
            if self._mine(requester, names):
                self.log.append(("reserve", time.monotonic()))

        def spy_release(reserver: Any, *names: Any) -> None:
            if self._mine(reserver, names):
                self.log.append(("release", time.monotonic()))
            release(reserver, *names)

        factory.reserve_pins, factory.release_pins = spy_reserve, spy_release

    def _mine(self, device: Any, names: Tuple[Any, ...]) -> bool:
        # only the input device claims the pin; the pin object itself reserves it too
        return type(device).__name__ == "DigitalInputDevice" and \
            any(str(n) in self.names for n in names)

    def unowned_s(self) -> float:
        """The longest stretch from a release to the next reserve (0: never released)."""
        longest, released = 0.0, None
        for op, at in self.log:
            if op == "release":
                released = at
            elif released is not None:
                longest, released = max(longest, at - released), None
        return longest


def reload(h: AgentHarness, config: Config) -> Agent:
    """What `run` does on SIGHUP: stop the old loop, replace the agent, run the new one."""
    assert h.agent is not None and h._thread is not None
    h.agent.loop.request_stop(reload=True)
    h._thread.join(10)
    started = time.monotonic()
    h.agent = h.agent.replace(config, flush_timeout_s=FLUSH_ON_RELOAD_S, pin_factory=h.factory)
    print(f"reload took {(time.monotonic() - started) * 1000:.0f} ms (edges held meanwhile)")
    h._thread = threading.Thread(target=h._run, name="agent-under-test", daemon=True)
    h._thread.start()
    return h.agent


def sos_events(events: List[Dict[str, Any]], boot: int) -> List[str]:
    """The SOS events the agent of ``boot`` sent (a new state machine reports its first
    state with ``initial: true``: then that is the tap's press)."""
    return [e["type"] for e in events if e["sensor"] == "sos" and e["boot"] == boot]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("change", ["heartbeat only", "new sos debounce"])
def test_a_tap_during_a_reload_makes_exactly_one_press_and_release(
        tmp_path: Path, broker: MosquittoBroker, mock_factory: Any, change: str) -> None:
    tap = TapWhileClosing(mock_factory.pin(SOS_PIN))
    h = AgentHarness(broker, tmp_path, mock_factory)
    with h:
        h.wait_events(lambda ev: any(e["type"] == "sos.released" for e in ev), what="start-up")
        claims = PinClaims(mock_factory, SOS_PIN)
        assert h.agent is not None
        tap.arm(h.agent)
        new = dataclasses.replace(h.config, heartbeat_s=1800)
        if change == "new sos debounce":   # the pin stays, its state machine is new
            new = dataclasses.replace(new, sensors=tuple(
                dataclasses.replace(s, debounce_ms=40) if s.name == "sos" else s
                for s in new.sensors))
        boot = reload(h, new).counters.boot
        assert tap.taps == 1
        events = h.wait_events(lambda ev: sos_events(ev, boot) == ["sos.pressed", "sos.released"],
                               timeout=10, what="the tap's sos.pressed and sos.released")
        h.sync()
        assert h.agent is not None and h.agent.config.heartbeat_s == 1800
        events = h.events()
        assert sos_events(events, boot) == ["sos.pressed", "sos.released"]
        assert_unique_boot_seq(events)
        window = claims.unowned_s()
        print(f"{change}: SOS pin owned by nobody for {window * 1000:.1f} ms during the reload")
        assert window < 0.1
        assert claims.log == []        # in fact the pin was never let go


@pytest.mark.timeout(60)
def test_a_rewired_sensor_is_released_and_claimed_again(tmp_path: Path, broker: MosquittoBroker,
                                                       mock_factory: Any) -> None:
    with AgentHarness(broker, tmp_path, mock_factory) as h:
        h.wait_events(lambda ev: any(e["type"] == "sos.released" for e in ev), what="start-up")
        new = dataclasses.replace(h.config, sensors=tuple(
            dataclasses.replace(s, pin=22) if s.name == "sos" else s for s in h.config.sensors))
        agent = reload(h, new)
        assert agent.inputs["sos"].pin_number == 22
        boot = agent.counters.boot
        h.wait_events(lambda ev: sos_events(ev, boot) == ["sos.released"],
                      what="the rewired sensor's new start-up report")
        mock_factory.pin(22).drive_low()
        events = h.wait_events(lambda ev: sos_events(ev, boot) == ["sos.released", "sos.pressed"],
                               what="a press on GPIO22")
        assert_unique_boot_seq(events)


@pytest.mark.timeout(60)
def test_two_reloads_in_a_row_keep_the_pin_and_its_state(tmp_path: Path, broker: MosquittoBroker,
                                                         mock_factory: Any) -> None:
    with AgentHarness(broker, tmp_path, mock_factory) as h:
        h.wait_events(lambda ev: any(e["type"] == "sos.released" for e in ev), what="start-up")
        assert h.agent is not None
        pin_input = h.agent.inputs["sos"]
        claims = PinClaims(mock_factory, SOS_PIN)
        h.pin(SOS_PIN).drive_low()          # pressed before the reloads, released after them
        h.wait_events(lambda ev: any(e["type"] == "sos.pressed" for e in ev), what="the press")
        reload(h, dataclasses.replace(h.config, heartbeat_s=1800))
        boot = reload(h, h.config).counters.boot
        assert h.agent.inputs["sos"] is pin_input and claims.log == []
        h.pin(SOS_PIN).drive_high()
        events = h.wait_events(lambda ev: "sos.released" in sos_events(ev, boot),
                               what="the release after two reloads")
        assert [e["type"] for e in events if e["sensor"] == "sos"].count("sos.pressed") == 1
        assert sos_events(events, boot) == ["sos.released"]
        assert_unique_boot_seq(events)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("change", ["heartbeat only", "new wiring_fault_ms"])
def test_a_form_c_smoke_keeps_both_pins_across_a_reload(tmp_path: Path, broker: MosquittoBroker,
                                                        mock_factory: Any, change: str) -> None:
    smoke = {"name": "kitchen_smoke", "kind": "smoke", "pin": 22, "pin_nc": 24,
             "wiring_fault_ms": 200}
    sensors = [{"name": "sos", "kind": "sos_button", "pin": SOS_PIN}, smoke]
    with AgentHarness(broker, tmp_path, mock_factory, overrides={"sensors": sensors}) as h:
        # both pins float high on their pull-ups: the NC contact reads like a cut wire
        h.wait_events(lambda ev: any(e["type"] == "sensor.fault" for e in ev), what="the fault")
        assert h.agent is not None
        nc_input = h.agent.inputs["kitchen_smoke.nc"]
        new = dataclasses.replace(h.config, heartbeat_s=1800)
        if change == "new wiring_fault_ms":    # the pins stay, the state machine is new
            new = dataclasses.replace(new, sensors=tuple(
                dataclasses.replace(s, wiring_fault_ms=300) if s.name == "kitchen_smoke" else s
                for s in new.sensors))
        agent = reload(h, new)
        assert agent.inputs["kitchen_smoke.nc"] is nc_input
        boot = agent.counters.boot
        if change == "new wiring_fault_ms":   # started from both kept pins' levels: the fault again
            h.wait_events(lambda ev: any(e["type"] == "sensor.fault" and e["boot"] == boot
                                         for e in ev), what="the new machine's fault")
        mock_factory.pin(24).drive_low()      # the NC contact wired: opposite of NO again
        events = h.wait_events(lambda ev: any(e["type"] == "sensor.recovered" and e["boot"] == boot
                                              for e in ev), what="sensor.recovered after the reload")
        mine = [e["type"] for e in events if e["sensor"] == "kitchen_smoke" and e["boot"] == boot]
        expected = {"heartbeat only": ["sensor.recovered"],
                    # a new machine reports its start (the fault it found) first
                    "new wiring_fault_ms": ["sensor.fault", "smoke.cleared", "sensor.recovered"]}
        assert sorted(mine) == sorted(expected[change]), mine
        assert_unique_boot_seq(events)

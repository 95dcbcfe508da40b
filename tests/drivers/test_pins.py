"""The gpiozero shell, end to end through real MockFactory pins and real time.

The real-time scenarios are the vector cases compressed in time (the windows are the
real defaults, only idle gaps are shortened). Event times must land within
``TOLERANCE_MS`` of the virtual-clock answer.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest

from agent.errors import WiringError
from drivers.events import SensorEvent
from drivers.pins import Edge, EdgeInput, make_pin_factory
from drivers.sensor import SensorCore
from tests.vector_harness import make_sensor

TOLERANCE_MS = 15


def _drive(pin: Any, logical: bool, active: str) -> None:
    high = logical == (active == "high")
    pin.drive_high() if high else pin.drive_low()


@pytest.mark.parametrize("pull,active,idle_high", [
    ("up", "low", True), ("up", "high", True), ("down", "high", False), ("down", "low", False),
    ("none", "low", False), ("none", "high", False),
])
def test_levels_map_to_logical(mock_factory: Any, pull: str, active: str, idle_high: bool) -> None:
    q: "queue.SimpleQueue[Edge]" = queue.SimpleQueue()
    pin = mock_factory.pin(17)
    inp = EdgeInput("sos", 17, pull=pull, active=active, sink=q, pin_factory=mock_factory)
    assert pin.state is idle_high
    idle = idle_high == (active == "high")       # logical level of the idle pin
    assert inp.read() is idle
    before = time.monotonic()
    _drive(pin, not idle, active)
    assert inp.read() is (not idle)
    _drive(pin, idle, active)
    after = time.monotonic()
    got = [q.get_nowait(), q.get_nowait()]
    assert [(n, lvl) for n, lvl, _ in got] == [("sos", not idle), ("sos", idle)]
    assert before <= got[0][2] <= got[1][2] <= after
    assert q.empty() and inp.read() is idle
    inp.close()


def test_pull_up_active_low_button(mock_factory: Any) -> None:
    """The SOS default: idle high through the pull-up, pressing pulls to GND = True."""
    got: List[Edge] = []
    inp = EdgeInput("sos", 17, pull="up", active="low", sink=got.append, pin_factory=mock_factory)
    pin = mock_factory.pin(17)
    pin.drive_low()
    assert got[-1][:2] == ("sos", True) and inp.read() is True
    pin.drive_high()
    assert got[-1][:2] == ("sos", False) and inp.read() is False
    assert "GPIO17" in repr(inp)


def test_pin_in_use_is_a_wiring_error(mock_factory: Any) -> None:
    first = EdgeInput("a", 22, sink=lambda e: None, pin_factory=mock_factory)
    with pytest.raises(WiringError, match="GPIO22"):
        EdgeInput("b", 22, sink=lambda e: None, pin_factory=mock_factory)
    first.close()


@pytest.mark.parametrize("kwargs", [dict(pull="sideways"), dict(active="on")])
def test_bad_wiring_words(mock_factory: Any, kwargs: Dict[str, str]) -> None:
    with pytest.raises(WiringError):
        EdgeInput("a", 23, sink=lambda e: None, pin_factory=mock_factory, **kwargs)


@pytest.mark.parametrize("backend", ["lgpio", "rpigpio", "native", "auto", "nonsense"])
def test_unavailable_backends_say_what_to_do(backend: str) -> None:
    if backend in ("lgpio", "rpigpio", "native", "auto"):
        try:
            factory = make_pin_factory(backend)
        except WiringError as exc:
            assert backend in str(exc) and exc.hint
            return
        factory.close()
        pytest.skip(f"{backend} works on this machine (a real Pi?)")
    with pytest.raises(WiringError, match="not known"):
        make_pin_factory(backend)


def test_mock_backend() -> None:
    from gpiozero.pins.mock import MockFactory

    factory = make_pin_factory("mock")
    try:
        assert isinstance(factory, MockFactory)
    finally:
        factory.close()


def test_fake_rpi_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """fake-rpi (a test extra) stands in for RPi.GPIO: gpiozero loads it,
    but the board check still finds no Pi, and we say so instead of failing later."""
    fake_rpi = pytest.importorskip("fake_rpi")
    monkeypatch.setitem(sys.modules, "RPi", fake_rpi.RPi)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", fake_rpi.RPi.GPIO)
    monkeypatch.delitem(sys.modules, "gpiozero.pins.rpigpio", raising=False)
    with pytest.raises(WiringError, match="found no Raspberry Pi") as info:
        make_pin_factory("rpigpio")
    assert "backend: mock" in str(info.value)


def _fake_rpi(monkeypatch: pytest.MonkeyPatch) -> None:
    """RPi.GPIO replaced by fake-rpi: gpiozero's real RPiGPIOFactory, on no Pi."""
    fake_rpi = pytest.importorskip("fake_rpi")
    monkeypatch.setitem(sys.modules, "RPi", fake_rpi.RPi)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", fake_rpi.RPi.GPIO)
    monkeypatch.delitem(sys.modules, "gpiozero.pins.rpigpio", raising=False)
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)


@pytest.mark.parametrize("backend", ["auto", "rpigpio"])
def test_no_pi_revision_is_refused_and_names_the_override(monkeypatch: pytest.MonkeyPatch,
                                                         backend: str) -> None:
    """docs/spec.md §2: a board without a Pi revision code (a Compute Module carrier,
    gpio-sim) fails at start, and the message says which config keys get past it."""
    _fake_rpi(monkeypatch)
    with pytest.raises(WiringError, match="no Raspberry Pi revision code") as info:
        make_pin_factory(backend)
    assert "gpio.board_revision" in info.value.hint and "gpio.chip" in info.value.hint


@pytest.mark.parametrize("backend", ["auto", "rpigpio"])
def test_board_revision_override(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    _fake_rpi(monkeypatch)
    factory = make_pin_factory(backend, board_revision=0xa02082)
    try:
        # fake-rpi cannot claim inputs; the VM test (tests/gpio_vm) claims real lines
        assert factory.board_info.model == "3B" and factory.board_info.revision == "a02082"
    finally:
        factory.close()


def test_unknown_board_revision_is_a_wiring_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_rpi(monkeypatch)
    with pytest.raises(WiringError, match="gpio.board_revision '1234'"):
        make_pin_factory("rpigpio", board_revision=0x1234)


def test_chip_needs_lgpio() -> None:
    with pytest.raises(WiringError, match="gpio.chip"):
        make_pin_factory("rpigpio", chip=1)


def test_board_revision_on_mock_factory() -> None:
    """MockFactory is a Pi factory too: the override reaches its board info."""
    factory = make_pin_factory("mock", board_revision=0xa02082)
    try:
        assert factory.board_info.model == "3B"
    finally:
        factory.close()


# ------------------------------------------------------------------ real time
class RealTimeLoop:
    """A tiny version of the agent's loop: queue -> state machine, waking at deadlines."""

    def __init__(self, sensor: SensorCore, q: "queue.SimpleQueue[Edge]") -> None:
        self.sensor, self.q = sensor, q
        self.events: List[SensorEvent] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            due = self.sensor.next_deadline()
            wait = 0.05 if due is None else min(0.05, max(0.0, due - time.monotonic()))
            try:
                _, level, now = self.q.get(timeout=wait)
                self.events += self.sensor.edge(level, now)
            except queue.Empty:
                self.events += self.sensor.advance(time.monotonic())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        assert not self._thread.is_alive()


def _wait_until(t: float) -> None:
    """Sleep, then spin the last 2 ms: the scenarios need ~1 ms precision."""
    while True:
        left = t - time.monotonic()
        if left <= 0:
            return
        if left > 0.002:
            time.sleep(left - 0.002)


WIRING = {"sos_button": ("up", "low"), "door": ("up", "high"), "smoke": ("up", "low")}

REALTIME = [
    dict(name="SOS clean press", kind="sos_button", inputs=[[0, 0], [100, 1], [400, 0]], until=500,
         expect=[[30, "sos.released", {"initial": True}], [130, "sos.pressed", {}],
                 [430, "sos.released", {"held_ms": 300}]]),
    dict(name="SOS contact bounce", kind="sos_button",
         inputs=[[0, 0], [100, 1], [101, 0], [102, 1], [103, 0], [104, 1],
                 [300, 0], [301, 1], [302, 0], [303, 1], [304, 0]], until=400,
         expect=[[30, "sos.released", {"initial": True}], [134, "sos.pressed", {}],
                 [334, "sos.released", {"held_ms": 200}]]),
    dict(name="door rattle", kind="door", config={"open_ms": 100, "close_ms": 200},
         inputs=[[0, 0], [300, 1], [340, 0], [380, 1], [400, 0], [450, 1], [470, 0], [500, 1]], until=700,
         expect=[[200, "door.closed", {"initial": True}], [600, "door.opened", {}]]),
    dict(name="smoke pulsed", kind="smoke", config={"clear_ms": 400},
         inputs=[[0, 0], [100, 1], [200, 0], [300, 1], [400, 0], [500, 1], [600, 0]], until=1100,
         expect=[[50, "smoke.cleared", {"initial": True}], [550, "smoke.alarm", {"pattern": "pulsed"}],
                 [1000, "smoke.cleared", {}]]),
]


@pytest.mark.parametrize("case", REALTIME, ids=[c["name"] for c in REALTIME])
def test_scenario_through_mock_pins_in_real_time(mock_factory: Any, case: Dict[str, Any]) -> None:
    pull, active = WIRING[case["kind"]]
    q: "queue.SimpleQueue[Edge]" = queue.SimpleQueue()
    inp = EdgeInput("s1", 5, pull=pull, active=active, sink=q, pin_factory=mock_factory)
    pin = mock_factory.pin(5)
    _drive(pin, bool(case["inputs"][0][1]), active)   # the level present at start-up
    while not q.empty():                               # (not an edge for the sensor)
        q.get_nowait()
    sensor = make_sensor(case["kind"], case.get("config"))
    t0 = time.monotonic()
    assert sensor.start(inp.read(), t0) == []   # every window is longer than 0
    loop = RealTimeLoop(sensor, q)
    loop.start()
    try:
        for t_ms, level in case["inputs"][1:]:
            _wait_until(t0 + t_ms / 1000)
            _drive(pin, bool(level), active)
        _wait_until(t0 + case["until"] / 1000)
    finally:
        loop.stop()
    assert sensor.raw == inp.read()   # the periodic re-read would find nothing to repair
    inp.close()
    events = loop.events
    got = [((e.at - t0) * 1000, e.type, dict(e.data)) for e in events]
    assert [ty for _, ty, _ in got] == [ty for _, ty, _ in case["expect"]], got
    for (t, ty, data), (t_exp, _, want) in zip(got, case["expect"]):
        assert abs(t - t_exp) <= TOLERANCE_MS, f"{ty} at {t:.1f} ms, expected {t_exp} ms"
        for key, value in want.items():
            if key == "held_ms":
                assert abs(data[key] - value) <= TOLERANCE_MS
            else:
                assert data[key] == value

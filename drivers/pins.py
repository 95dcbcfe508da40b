"""The thin gpiozero shell: pin edges -> ``(sensor, logical level, now)`` on a queue.

Theory of operation
-------------------
Each sensor gets one :class:`EdgeInput`, a gpiozero ``DigitalInputDevice`` built
*without* ``bounce_time`` (it means different things per backend and MockFactory
ignores it; our own debouncers do the work). Its activate/deactivate callbacks run
in gpiozero's thread and do exactly one thing: hand ``(name, level, time.monotonic())``
to the caller's queue (``put``) or ``submit`` callable. The agent's loop owns
everything else. ``level`` is *logical* (True = pressed / open / smoke): the config's
``active: low|high`` is applied here, independently of ``pull:``.

:meth:`EdgeInput.read` re-reads the pin; the loop calls it about once a second and
feeds a synthetic edge when it differs from the state machine's ``raw``, which
repairs an edge the backend lost.

:func:`make_pin_factory` turns ``gpio.backend`` into a gpiozero pin factory and fails
early, with a :class:`~agent.errors.WiringError` that says what to do, when that
backend cannot work on this machine. gpiozero's Pi factories map BCM numbers to lines
from the board's revision code; a board without one (a Compute Module carrier, another
SBC, gpio-sim in tests/gpio_vm) is refused unless ``gpio.board_revision`` says which
Pi's layout to assume (and ``gpio.chip`` which /dev/gpiochipN lgpio opens).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Optional, Tuple, Union

from drivers.errors import WiringError

#: what goes on the loop's queue
Edge = Tuple[str, bool, float]

BACKENDS = ("auto", "lgpio", "rpigpio", "native", "mock")
PULLS = {"up": True, "down": False, "none": None}
ACTIVES = ("low", "high")

_FACTORY_CLASSES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory",
              "install lgpio (`sudo apt install python3-lgpio`, or `pip install lgpio`); "
              "it is the only backend that works on a Pi 5"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory",
                "install RPi.GPIO (`sudo apt install python3-rpi.gpio`); it works on a Pi 4 or older, "
                "not on a Pi 5: use `backend: lgpio` there"),
    "native": ("gpiozero.pins.native", "NativeFactory",
               "the native backend needs a Raspberry Pi and read/write access to /dev/gpiomem "
               "(user in the `gpio` group)"),
    "mock": ("gpiozero.pins.mock", "MockFactory", "gpiozero's MockFactory ships with gpiozero; reinstall gpiozero"),
}


#: what to tell a technician whose board has no Raspberry Pi revision code
NO_REVISION_HINT = (
    "on a Raspberry Pi this means /proc/cpuinfo or the device tree is unreadable. On a "
    "Compute Module carrier or another board, give the Pi model whose 40-pin layout the "
    "wiring follows, as `gpio.board_revision` (e.g. a02082, a Pi 3B), and for lgpio the "
    "GPIO chip of those lines as `gpio.chip` (N of /dev/gpiochipN); or use `backend: mock` "
    "to try the agent without hardware")


def make_pin_factory(backend: str, *, chip: Optional[int] = None,
                     board_revision: Optional[int] = None) -> Any:
    """gpiozero pin factory for ``gpio`` (docs/spec.md §2, §10), checked on this machine.

    ``auto`` tries gpiozero's own order (``GPIOZERO_PIN_FACTORY`` if set, then lgpio,
    rpigpio, pigpio, native). ``mock`` gives a MockFactory (no hardware). Raises
    :class:`WiringError` when the backend cannot run here: not installed, no GPIO chip,
    or no Raspberry Pi revision code. ``board_revision`` (a Pi revision code) and
    ``chip`` (lgpio's /dev/gpiochipN) are the override for boards that have none: with
    either one, ``auto`` tries lgpio, then rpigpio and native, with the override.
    """
    if backend not in BACKENDS:
        raise WiringError(f"gpio.backend {backend!r} is not known",
                          hint=f"use one of: {', '.join(BACKENDS)}")
    if chip is not None and backend not in ("lgpio", "auto"):
        raise WiringError(f"gpio.chip is set, but backend {backend!r} has no chip choice",
                          hint="remove gpio.chip, or use `backend: lgpio`")
    if backend == "auto":
        if chip is None and board_revision is None:
            factory = _auto_factory()
            if not _is_mock(factory):
                _check_board(factory, "auto", board_revision)
            return factory
        return _auto_with_override(chip, board_revision)
    factory = _open(backend, chip, board_revision)
    if backend != "mock":
        _check_board(factory, backend, board_revision)
    return factory


def _open(backend: str, chip: Optional[int], board_revision: Optional[int]) -> Any:
    module_name, class_name, advice = _FACTORY_CLASSES[backend]
    try:
        module = __import__(module_name, fromlist=(class_name,))
        cls = getattr(module, class_name)
        if board_revision is not None:
            cls = _with_revision(cls, board_revision)
        if backend == "mock":
            return cls()
        return cls(chip=chip) if backend == "lgpio" else cls()
    except ImportError as exc:
        raise WiringError(f"gpio.backend {backend!r} is not installed ({exc})", hint=advice) from exc
    except Exception as exc:  # RPi.GPIO off a Pi: RuntimeError; lgpio: lgpio.error opening gpiochip
        if type(exc).__name__ == "PinUnknownPi":  # lgpio asks for the revision to pick a chip
            raise _no_revision(backend, exc) from exc
        raise WiringError(f"gpio.backend {backend!r} cannot start on this machine "
                          f"({type(exc).__name__}: {exc})", hint=advice) from exc


def _with_revision(cls: Any, board_revision: int) -> Any:
    """``cls`` that reports ``board_revision`` instead of reading the board's.

    gpiozero's Pi factories build their pin map from the revision code only
    (``_get_revision``); the override replaces just that answer.
    """
    def _get_revision(self: Any) -> int:
        return board_revision
    return type(f"{cls.__name__}WithRevision", (cls,), {"_get_revision": _get_revision})


def _auto_with_override(chip: Optional[int], board_revision: Optional[int]) -> Any:
    failures = []
    for backend in ("lgpio", "rpigpio", "native"):
        if chip is not None and backend != "lgpio":
            break  # only lgpio can open another chip
        try:
            factory = _open(backend, chip, board_revision)
            _check_board(factory, backend, board_revision)
            return factory
        except WiringError as exc:
            failures.append(str(exc))
    raise WiringError("gpio.backend 'auto' with gpio.chip/gpio.board_revision found no working "
                      "backend: " + "; ".join(failures),
                      hint="install python3-lgpio, or set gpio.backend explicitly")


def _is_mock(factory: Any) -> bool:
    from gpiozero.pins.mock import MockFactory
    return isinstance(factory, MockFactory)


def _no_revision(backend: str, exc: Exception) -> WiringError:
    return WiringError(f"gpio.backend {backend!r} found no Raspberry Pi revision code on this board "
                       f"({type(exc).__name__}: {exc})", hint=NO_REVISION_HINT)


def _check_board(factory: Any, backend: str, board_revision: Optional[int]) -> None:
    """Pin factories open lazily; ask for the board now, so a non-Pi fails here."""
    try:
        factory.board_info
    except Exception as exc:  # gpiozero.exc.PinUnknownPi and friends
        try:
            factory.close()
        except Exception:  # pragma: no cover - best effort on the way out
            pass
        if board_revision is not None:
            raise WiringError(f"gpio.board_revision '{board_revision:x}' is not a Raspberry Pi "
                              f"revision code gpiozero knows ({type(exc).__name__}: {exc})",
                              hint="use the code of a Pi with the same 40-pin layout, e.g. "
                                   "a02082 (Pi 3B)") from exc
        raise _no_revision(backend, exc) from exc


def _auto_factory() -> Any:
    import warnings

    from gpiozero import Device
    from gpiozero.exc import BadPinFactory

    tried = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            factory = Device._default_pin_factory()
        except BadPinFactory as exc:
            tried = [str(w.message) for w in caught]
            raise WiringError("gpio.backend 'auto' found no working GPIO backend: " + "; ".join(tried),
                              hint="on a Pi 5 install python3-lgpio; elsewhere set gpio.backend "
                                   "explicitly, or `mock` to run without hardware") from exc
    return factory


class EdgeInput:
    """One sensor's input pin, reporting logical edges to the agent's loop.

    Wiring is whatever the sensor's docstring says; this class only needs the BCM
    ``pin``, the ``pull`` the Pi should apply (``up``: internal pull-up, the contact
    pulls to GND; ``down``: internal pull-down, the contact pulls to 3V3; ``none``: an
    external resistor or an opto-isolator/relay module drives the pin) and ``active``,
    the pin level that means pressed / open / smoke (``low`` or ``high``).

    Example::

        q: "queue.SimpleQueue[Edge]" = queue.SimpleQueue()
        sos = EdgeInput("sos", 17, pull="up", active="low", sink=q)
        name, level, now = q.get()        # ("sos", True, 1234.5) when pressed

    ``sink`` is a ``queue.SimpleQueue`` (anything with ``put``) or a callable taking
    the ``(name, level, now)`` tuple. ``pin_factory`` None means gpiozero's default.
    """

    def __init__(self, name: str, pin: int, *, pull: str = "up", active: str = "low",
                 sink: Union[Any, Callable[[Edge], None]],
                 clock: Callable[[], float] = time.monotonic,
                 pin_factory: Any = None) -> None:
        from gpiozero import DigitalInputDevice

        if pull not in PULLS:
            raise WiringError(f"sensor {name!r}: pull {pull!r} is not one of up, down, none")
        if active not in ACTIVES:
            raise WiringError(f"sensor {name!r}: active {active!r} is not one of low, high")
        put = getattr(sink, "put", None)
        self._submit: Callable[[Edge], None] = put if callable(put) else sink
        if not callable(self._submit):
            raise TypeError("sink must have put() or be callable")
        self.name = name
        self._clock = clock  # the agent's loop clock (virtual in `simulate`)
        self.pin_number = pin
        self.pull = pull
        self.active = active
        pull_up = PULLS[pull]
        # gpiozero fixes active_state from the pull; with no pull it wants one: take
        # "high" and map to our logical level ourselves in every case.
        self._device: Any = None
        try:
            self._device = DigitalInputDevice(pin, pull_up=pull_up,
                                              active_state=True if pull_up is None else None,
                                              pin_factory=pin_factory)
        except Exception as exc:
            self.close()
            raise WiringError(f"sensor {name!r}: cannot claim GPIO{pin} ({type(exc).__name__}: {exc})",
                              hint="check the pin is not used by another sensor, output or program, "
                                   "and that the user is in the `gpio` group") from exc
        # gpiozero "active" means: pin high if its active_state is True.
        gz_active_is_high = pull_up is not True
        self._gz_active_means_logical = gz_active_is_high == (active == "high")
        self._device.when_activated = self._on_gz_active
        self._device.when_deactivated = self._on_gz_inactive

    def _on_gz_active(self) -> None:
        self._submit((self.name, self._gz_active_means_logical, self._clock()))

    def _on_gz_inactive(self) -> None:
        self._submit((self.name, not self._gz_active_means_logical, self._clock()))

    def read(self) -> bool:
        """The pin's current logical level (True = active), read now."""
        return bool(self._device.is_active) == self._gz_active_means_logical

    def close(self) -> None:
        if self._device is not None:
            self._device.when_activated = None
            self._device.when_deactivated = None
            self._device.close()
            self._device = None

    def __enter__(self) -> "EdgeInput":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        level = "closed" if self._device is None else ("active" if self.read() else "inactive")
        return f"<EdgeInput {self.name!r} GPIO{self.pin_number} pull={self.pull} active={self.active} {level}>"

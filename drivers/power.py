"""Mains and backup-battery supervision from a UPS board's outputs (docs/spec.md §13.1).

Theory of operation
-------------------
Both are :class:`~drivers.contact.TwoStateContact` inputs (one debouncer, one level
event per accepted level, transitions in :data:`drivers.contact.TRANSITIONS`).

:class:`MainsMonitor` (active = mains **gone**): a cut is believed only once it has
lasted ``report_delay_s`` plus a jitter drawn uniformly from 0..``jitter_s``, so a
district's power cut does not make every gateway report in the same second. The
jitter is drawn anew for each cut that could be reported (the raw level going to
"gone", or "gone" at start-up) from the injected ``rand``; power returning before
that sends nothing and counts one :attr:`MainsMonitor.power_blips`. Power back for
``restore_delay_s`` is ``power.mains_restored``, sent only after a reported
``power.mains_lost`` or as the start-up report (``data.initial``): the table has no
entry from "present" to "present", so a blip cannot produce one. Power flickering
back for less than ``restore_delay_s`` during a reported outage changes nothing and
draws nothing.

:class:`BatteryMonitor` (active = battery low) is plain stable-for-N: low for
``low_ms`` (5 s, longer than a dip under load), ok for ``ok_ms`` (60 s, so a battery
on the edge does not toggle while charging).
"""
from __future__ import annotations

import math
import random
from typing import Any, Callable, Mapping, Optional

from .contact import ACTIVE, TwoStateContact
from .debounce import FlappingPolicy, Micros, check_window_ms, check_window_s, to_micros, to_seconds

#: docs/spec.md §13.1 timing defaults (the config's defaults for ``kind: mains``)
MAINS_DEFAULTS: Mapping[str, float] = {"report_delay_s": 300, "jitter_s": 120, "restore_delay_s": 60}
#: docs/spec.md §13.1 timing defaults (the config's defaults for ``kind: battery``)
BATTERY_DEFAULTS: Mapping[str, float] = {"low_ms": 5000, "ok_ms": 60000}

#: a source of uniform fractions in [0, 1], like ``random.Random().random``
RandomSource = Callable[[], float]


class MainsMonitor(TwoStateContact):
    """Mains power, watched through a UPS board's power-fail output.

    The Pi runs on a UPS HAT or battery-backed supply; the board has a logic output
    (often marked PFO, PLD or "AC OK") that changes when mains is lost.

    Wiring (default config ``pull: up``, ``active: high`` = high means mains gone):
    the board's power-fail output to GPIO n and its GND to a Pi GND pin. It must be
    an open-collector / open-drain output that pulls low while mains is present, or
    a 3.3 V logic output that is high on power loss. **Never feed a 5 V output to a
    GPIO pin**: use a divider (e.g. 10 k / 20 k) or an opto-isolator. A relay
    contact that is closed while mains is present: COM to GND, NO to GPIO n. With
    this wiring a cut wire reads as "mains gone" and is reported, which fails safe.
    An output that is *low* on power loss needs ``active: low``.

    Example::

        mains = MainsMonitor("mains", rand=random.Random().random)
        events = mains.start(level=False, now=0.0)    # mains present at boot
        events += mains.advance(now=60.0)              # -> power.mains_restored (initial)

    Parameters:

    * ``report_delay_s`` (seconds, default 300): a cut must last at least this long
      before ``power.mains_lost``; shorter cuts only count in ``power_blips``.
    * ``jitter_s`` (seconds, default 120): plus a random 0..``jitter_s``, drawn anew
      for each cut; 0 turns the jitter off.
    * ``restore_delay_s`` (seconds, default 60): power back this long is
      ``power.mains_restored``.
    * ``rand`` (callable returning a float in [0, 1], default None = a generator
      seeded from the operating system, so that gateways never share a sequence);
      tests inject their own.
    * ``flapping`` (:class:`FlappingPolicy` or None, default None = off).

    Events: ``power.mains_lost`` (critical; ``data.delay_s``: seconds from the cut to
    the report, so the cut began at ``ts - delay_s``), ``power.mains_restored``;
    ``data.state`` ``lost``/``present``, the start-up one with ``data.initial``.
    """

    kind = "mains"
    ACTIVE_REPORT = ("power.mains_lost", "lost")
    INACTIVE_REPORT = ("power.mains_restored", "present")

    def __init__(self, name: str, *, report_delay_s: float = MAINS_DEFAULTS["report_delay_s"],
                 jitter_s: float = MAINS_DEFAULTS["jitter_s"],
                 restore_delay_s: float = MAINS_DEFAULTS["restore_delay_s"],
                 rand: Optional[RandomSource] = None, flapping: Optional[FlappingPolicy] = None) -> None:
        report_us = check_window_s("report_delay_s", report_delay_s)
        if isinstance(jitter_s, bool) or not isinstance(jitter_s, (int, float)) or not jitter_s >= 0:
            raise ValueError(f"jitter_s is {jitter_s!r}; it must be a number of seconds, 0 or more")
        super().__init__(name, active_us=report_us,
                         inactive_us=check_window_s("restore_delay_s", restore_delay_s), flapping=flapping)
        self._report_us = report_us
        self._jitter_us = to_micros(jitter_s)
        self.rand: RandomSource = rand if rand is not None else random.Random().random
        self._blips = 0

    @property
    def power_blips(self) -> int:
        """Cuts that ended before they were reported, since start (for the heartbeat)."""
        return self._blips

    def _draw_delay(self) -> None:
        """A fresh report delay for the cut that has just begun."""
        if self._jitter_us == 0:
            delay = self._report_us
        else:
            r = self.rand()
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 1:
                raise ValueError(f"{self.name}: the random source (rand) returned {r!r}; "
                                 "it must return a number from 0 to 1, like random.random")
            delay = self._report_us + int(math.floor(r * self._jitter_us))
        # The debouncer reads its active window when asked for the deadline, so the
        # new delay applies to this cut only.
        self._debouncer.active_us = delay

    def _cut_pending(self) -> bool:
        return bool(self._debouncer.raw) and self._debouncer.stable is not True

    def _begin(self, level: bool, t: Micros) -> None:
        if level:
            self._draw_delay()
        super()._begin(level, t)

    def _raw_edge(self, level: bool, t: Micros) -> None:
        if level and self._debouncer.stable is not True:
            self._draw_delay()
        elif not level and self._cut_pending():
            self._blips += 1
        super()._raw_edge(level, t)

    def _level_data(self, phase: str) -> Mapping[str, Any]:
        return {"delay_s": to_seconds(self._debouncer.active_us)} if phase == ACTIVE else {}


class BatteryMonitor(TwoStateContact):
    """The backup battery, watched through a UPS board's low-battery output.

    Wiring (default config ``pull: up``, ``active: high`` = high means battery low):
    the board's low-battery output (often marked LBO or BATLOW) to GPIO n and its GND
    to a Pi GND pin; as for :class:`MainsMonitor`, an open-drain output or 3.3 V logic
    only, **never 5 V** on a GPIO pin. Many charger chips' LBO pins are open-drain
    and pull *low* when the battery is low: set ``active: low`` for those (a cut wire
    then reads as "ok": check the board's datasheet and prefer an output that is
    high when low).

    Example::

        battery = BatteryMonitor("ups_battery")
        events = battery.start(level=False, now=0.0)  # battery fine at boot
        events += battery.advance(now=60.0)            # -> power.battery_ok (initial)

    Parameters (milliseconds):

    * ``low_ms`` (int, default 5000): low this long is ``power.battery_low``; a dip
      while the Pi draws a burst of current is shorter.
    * ``ok_ms`` (int, default 60000): ok again this long is ``power.battery_ok``.
    * ``flapping`` (:class:`FlappingPolicy` or None, default None = off).

    Events: ``power.battery_low`` (critical), ``power.battery_ok``; ``data.state``
    ``low``/``ok``, the start-up one with ``data.initial``.
    """

    kind = "battery"
    ACTIVE_REPORT = ("power.battery_low", "low")
    INACTIVE_REPORT = ("power.battery_ok", "ok")

    def __init__(self, name: str, *, low_ms: float = BATTERY_DEFAULTS["low_ms"],
                 ok_ms: float = BATTERY_DEFAULTS["ok_ms"], flapping: Optional[FlappingPolicy] = None) -> None:
        super().__init__(name, active_us=check_window_ms("low_ms", low_ms),
                         inactive_us=check_window_ms("ok_ms", ok_ms), flapping=flapping)

"""Door contact: asymmetric stable-for-N debouncing.

Theory of operation
-------------------
A :class:`~drivers.contact.TwoStateContact`: one debouncer with ``open_ms`` for the
active (open) level and ``close_ms`` for the inactive (closed) one. Each accepted level
is reported; wind rattle (a door moving a few millimetres in its frame) produces
pulses shorter than ``open_ms`` and vanishes. Flapping (default 16 edges in 10 s) holds the reports back
until 60 s of quiet (see :mod:`drivers.sensor`).
"""
from __future__ import annotations

from typing import Mapping, Optional

from .contact import TwoStateContact
from .debounce import DOOR_FLAPPING, FlappingPolicy, check_window_ms

#: docs/spec.md §3 timing defaults (the config's defaults for ``kind: door``)
DEFAULTS: Mapping[str, float] = {"open_ms": 500, "close_ms": 1000}


class DoorContact(TwoStateContact):
    """A magnetic reed contact on the front door (or a window).

    Wiring (default config ``pull: up``, ``active: high``): use a *normally closed*
    (NC) reed switch, closed while the magnet is near (door shut). One wire to GPIO n,
    the other to GND; the internal pull-up makes the pin high when the contact opens.
    So high means open *or the wire is cut*, which fails safe: a cut cable reads as
    "open" instead of hiding a door that opens. With an NO contact, set ``active: low``
    (then a cut wire reads as closed: avoid). Keep the cable away from mains wiring.

    Example::

        door = DoorContact("front_door", open_ms=500, close_ms=1000)
        events = door.start(level=False, now=0.0)     # closed at boot
        events += door.advance(now=1.0)                # -> door.closed (initial)

    Parameters:

    * ``open_ms`` (int, default 500): the contact must stay open this long before
      ``door.opened``; shorter openings (wind rattle) are ignored.
    * ``close_ms`` (int, default 1000): it must stay closed this long before
      ``door.closed``; a door swinging back and bouncing on its frame counts once.
    * ``flapping`` (:class:`FlappingPolicy` or None, default 16 edges in 10 s, quiet
      60 s): a loose magnet or a wire about to break.

    Events: ``door.opened``, ``door.closed`` (``data.state`` ``open``/``closed``; the
    start-up one with ``data.initial``), ``sensor.flapping``, ``sensor.recovered``.
    """

    kind = "door"
    ACTIVE_REPORT = ("door.opened", "open")
    INACTIVE_REPORT = ("door.closed", "closed")

    def __init__(self, name: str, *, open_ms: float = DEFAULTS["open_ms"],
                 close_ms: float = DEFAULTS["close_ms"],
                 flapping: Optional[FlappingPolicy] = DOOR_FLAPPING) -> None:
        super().__init__(name, active_us=check_window_ms("open_ms", open_ms),
                         inactive_us=check_window_ms("close_ms", close_ms), flapping=flapping)

"""systemd notification (sd_notify) over the standard library's AF_UNIX socket.

systemd passes ``NOTIFY_SOCKET`` to a ``Type=notify`` service; the agent sends
``READY=1`` once the pins are claimed and the outbox is open, ``WATCHDOG=1`` from the
main loop while it is alive, and ``STOPPING=1`` when it closes. There is no
``RELOADING=1``: a ``Type=notify`` unit does not expect it (that is
``Type=notify-reload``, systemd 253 and later), and the config reload on SIGHUP is the
agent's own affair. Outside systemd every call is a no-op, so the daemon runs the same
in a terminal.
"""
from __future__ import annotations

import os
import socket
from typing import Mapping, Optional


class Notifier:
    """Sends state lines to systemd's notify socket (or nowhere, if there is none)."""

    def __init__(self, address: Optional[str], *, watchdog_usec: Optional[int] = None) -> None:
        self._sock: Optional[socket.socket] = None
        self.watchdog_usec = watchdog_usec
        if address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # '@' means an abstract socket: the name starts with a NUL byte
            self._target = "\0" + address[1:] if address.startswith("@") else address

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "Notifier":
        usec: Optional[int] = None
        if environ.get("WATCHDOG_USEC", "").isdigit():
            pid = environ.get("WATCHDOG_PID", "")
            if not pid or pid == str(os.getpid()):
                usec = int(environ["WATCHDOG_USEC"])
        return cls(environ.get("NOTIFY_SOCKET") or None, watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    @property
    def watchdog_interval_s(self) -> Optional[float]:
        """How often to ping: half the watchdog timeout, as systemd recommends."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def notify(self, state: str) -> bool:
        """Send one or more ``KEY=value`` lines. Returns False when nobody listens."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(state.encode("utf-8"), self._target)
        except OSError:
            return False  # systemd gone (shutdown): nothing useful to do
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

"""sd_notify against a real AF_UNIX datagram socket, as systemd would hold it."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Iterator, Tuple

import pytest

from agent.app.sdnotify import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[Tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_ready_and_watchdog_reach_the_socket(notify_socket: Tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    n = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("outbox open")
    assert sock.recv(4096) == b"READY=1\nSTATUS=outbox open"
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    n.close()


def test_abstract_socket_name() -> None:
    name = f"@homecare-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name[1:])
    sock.settimeout(5)
    try:
        assert Notifier.from_environ({"NOTIFY_SOCKET": name}).stopping()
        assert sock.recv(100) == b"STOPPING=1"
    finally:
        sock.close()


def test_without_systemd_everything_is_a_quiet_no_op() -> None:
    n = Notifier.from_environ({})
    assert not n.enabled
    assert n.ready() is False and n.watchdog() is False
    assert n.watchdog_interval_s is None


def test_watchdog_interval_is_half_the_timeout_and_only_for_our_pid() -> None:
    mine = Notifier.from_environ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
    assert mine.watchdog_interval_s == 15.0
    other = Notifier.from_environ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval_s is None


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    n = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.ready() is False

"""bench/procstat.py against real processes: wake-ups, CPU time and memory move as they should."""
from __future__ import annotations

import subprocess
import sys

from bench import procstat

WAKER = "import sys, time\nsys.stdin.readline()\nfor _ in range(50): time.sleep(0.002)\nprint('done', flush=True)\nsys.stdin.readline()\n"
SPENDER = "import sys\nsys.stdin.readline()\nx = bytearray(64 << 20)\nfor i in range(0, len(x), 4096): x[i] = 1\nprint('done', flush=True)\nsys.stdin.readline()\n"


def _between(script: str) -> "tuple[subprocess.Popen[str], int]":
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.pid


def _step(proc: "subprocess.Popen[str]") -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "done"


def test_fifty_sleeps_are_at_least_fifty_wakeups() -> None:
    proc, pid = _between(WAKER)
    try:
        before = procstat.wakeups(pid)
        _step(proc)
        assert procstat.wakeups(pid) - before >= 50
    finally:
        proc.kill()
        proc.wait()


def test_touching_64_mib_shows_in_rss_and_cpu() -> None:
    proc, pid = _between(SPENDER)
    try:
        rss, cpu = procstat.memory_kb(pid)["VmRSS"], procstat.cpu_ns(pid)
        _step(proc)
        assert procstat.memory_kb(pid)["VmRSS"] - rss >= 60 * 1024
        assert procstat.memory_kb(pid)["VmHWM"] >= procstat.memory_kb(pid)["VmRSS"]
        assert procstat.cpu_ns(pid) > cpu
        assert procstat.threads(pid) == 1
    finally:
        proc.kill()
        proc.wait()

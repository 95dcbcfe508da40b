"""What ``/proc`` says about a running process: memory, CPU time and wake-ups.

Wake-ups are the number of times the scheduler put one of the process's threads on a
CPU (the third field of ``/proc/PID/task/TID/schedstat``), summed over its threads: an
idle daemon that blocks in ``select`` with no timeout adds none, each timer or packet
that wakes it adds at least one. Threads that end between two readings drop out of the
sum, so read it only where the thread set is stable (an idle daemon).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict

CLK_TCK = os.sysconf("SC_CLK_TCK")


def memory_kb(pid: int) -> Dict[str, int]:
    """VmRSS and VmHWM (the peak) of ``pid`` in kB."""
    found: Dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` (all its threads) in clock ticks (``CLK_TCK`` a second)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def cpu_ns(pid: int) -> int:
    """CPU time of ``pid``'s threads in ns (schedstat: finer than the tick count)."""
    return sum(_schedstat(pid)[0].values())


def wakeups(pid: int) -> int:
    """Times any thread of ``pid`` was scheduled onto a CPU, summed over its threads."""
    return sum(_schedstat(pid)[1].values())


def _schedstat(pid: int) -> "tuple[Dict[str, int], Dict[str, int]]":
    run_ns: Dict[str, int] = {}
    slices: Dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "schedstat").read_text().split()
        except FileNotFoundError:   # the thread ended while we looked
            continue
        run_ns[task.name], slices[task.name] = int(fields[0]), int(fields[2])
    return run_ns, slices


def threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))

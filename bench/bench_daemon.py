"""Start-up time, idle memory and idle CPU of the real daemon, against a bare paho import.

The agent: ``python -m agent run --config C`` with the mock GPIO backend, the broker set
to a free loopback port where nobody listens (offline: a normal state, docs/spec.md §9), and a
real ``AF_UNIX`` datagram ``NOTIFY_SOCKET`` plus ``WATCHDOG_USEC`` as systemd would give
(``WatchdogSec=30`` in the unit). Start-up = from ``Popen`` to ``READY=1`` on that socket.

The baseline, in the same run: ``python -c 'import paho.mqtt.client, time; print("ready")...'``,
the least a paho-based Python daemon costs; start-up = from ``Popen`` to its ``ready`` line.

Start-up is measured ``BENCH_STARTS`` times (default 5), interleaved, and the median
given. The last pair is then left running side by side for ``BENCH_IDLE_S`` seconds
(default 60): figures are resident memory at the end (VmRSS, and VmHWM, the peak, from
``/proc/PID/status``) and CPU seconds (utime + stime) used during that idle time.

Run: ``python -m bench daemon`` (``BENCH_IDLE_S=10`` for a quick look).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
BASELINE = ("import paho.mqtt.client, time, sys; print('ready', flush=True); "
            "sys.stdin.read()")   # idles until its stdin closes


def _env(extra: Dict[str, str]) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("JOURNAL_STREAM", None)
    env.pop("NOTIFY_SOCKET", None)
    env.update(extra)
    return env


def proc_status(pid: int) -> Dict[str, int]:
    """VmRSS and VmHWM of ``pid`` in kB."""
    found: Dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class Daemon:
    """One ``homecare-agent run``, started now; :meth:`wait_ready` waits for READY=1."""

    def __init__(self, folder: Path, config: Path) -> None:
        self.sock_path = str(folder / f"notify-{time.monotonic_ns()}.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.stderr = open(folder / "agent-stderr.txt", "a")
        env = _env({"NOTIFY_SOCKET": self.sock_path, "WATCHDOG_USEC": "30000000"})
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                                     env=env, cwd=str(REPO), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.stderr)

    def wait_ready(self, timeout: float = 30.0) -> float:
        deadline = self.t0 + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"homecare-agent run sent no READY=1 (exit {self.proc.poll()}); "
                                   f"see {self.stderr.name}")
            self.sock.settimeout(remaining)
            try:
                message = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            if "READY=1" in message.split("\n"):
                return time.monotonic() - self.t0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.sock.close()
        self.stderr.close()


class Baseline:
    """``python -c 'import paho.mqtt.client ...'``; :meth:`wait_ready` reads its ready line."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-c", BASELINE], env=_env({}),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def wait_ready(self) -> float:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"baseline printed {line!r}, exit {self.proc.poll()}")
        return time.monotonic() - self.t0

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def measure(folder: Path, config: Path, starts: int, idle_s: float) -> Dict[str, Tuple[float, float]]:
    """(agent, baseline) pairs: start-up s, RSS kB, peak kB, idle CPU s."""
    agent_starts: List[float] = []
    base_starts: List[float] = []
    daemon: Optional[Daemon] = None
    base: Optional[Baseline] = None
    try:
        for i in range(starts):
            base = Baseline()
            base_starts.append(base.wait_ready())
            daemon = Daemon(folder, config)
            agent_starts.append(daemon.wait_ready())
            if i < starts - 1:
                daemon.stop()
                base.stop()
        assert daemon is not None and base is not None
        time.sleep(1.0)   # let the start-up reports settle before the idle time is counted
        cpu0 = (cpu_seconds(daemon.proc.pid), cpu_seconds(base.proc.pid))
        time.sleep(idle_s)   # the idle time is what is measured: nothing to wait on
        cpu1 = (cpu_seconds(daemon.proc.pid), cpu_seconds(base.proc.pid))
        mem = (proc_status(daemon.proc.pid), proc_status(base.proc.pid))
        if daemon.proc.poll() is not None:
            raise RuntimeError("the agent died while idle")
    finally:
        if daemon is not None:
            daemon.stop()
        if base is not None:
            base.stop()
    return {
        "start-up to ready (s, median)": (statistics.median(agent_starts),
                                          statistics.median(base_starts)),
        "VmRSS after idle (MiB)": (mem[0]["VmRSS"] / 1024, mem[1]["VmRSS"] / 1024),
        "VmHWM peak (MiB)": (mem[0]["VmHWM"] / 1024, mem[1]["VmHWM"] / 1024),
        "CPU during idle (s)": (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]),
    }


def main(argv: Optional[List[str]] = None) -> int:
    sys.path.insert(0, str(REPO))
    from tests.agent_files import write_agent_files   # the tests' complete mock-pin config
    from tests.broker import free_port

    idle_s = float(os.environ.get("BENCH_IDLE_S", "60"))
    starts = int(os.environ.get("BENCH_STARTS", "5"))
    folder = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    try:
        files = write_agent_files(folder / "agent", port=free_port())   # nobody listens: offline
        figures = measure(folder, files.config, starts, idle_s)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(f"homecare-agent run (mock pins, broker offline, 3 sensors, LED+buzzer) vs "
          f"`python -c 'import paho.mqtt.client'`; {starts} starts, {idle_s:.0f} s idle; "
          f"Python {sys.version.split()[0]}")
    print(f"  {'':32} {'agent':>10} {'baseline':>10} {'ratio':>8}")
    for name, (agent, base) in figures.items():
        ratio = f"{agent / base:.1f}x" if base > 0 else "-"
        digits = 3 if "CPU" in name or "start" in name else 1
        print(f"  {name:32} {agent:10.{digits}f} {base:10.{digits}f} {ratio:>8}")
    cpu = figures["CPU during idle (s)"][0]
    print(f"  agent idle CPU: {100 * cpu / idle_s:.3f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Instructions per event on the live path and per idle minute, counted by callgrind.

A count of executed instructions does not depend on what else the machine is doing, so
a regression shows as a number, not as noise. Every process runs under
``valgrind --tool=callgrind`` (all its threads counted together); once it has started,
``callgrind_control -z`` zeroes the counters and ``callgrind_control -d`` dumps them at
the end of what is measured, so imports and start-up are not counted. Python runs
with ``PYTHONHASHSEED=0``. The broker (mosquitto, loopback) runs outside valgrind.

* **Live path**: ``bench/live_driver.py``, ``BENCH_CG_EVENTS`` events (default 100, after
  10 not counted): ours = Recorder -> Ed25519 JWT -> commit -> Publisher -> PUBACK ->
  delete committed, one event at a time; baseline = raw paho publishing a token of the
  same size at QoS 1 and waiting for its PUBACK.
* **Idle**: the real daemon (``bench daemon``'s config: mock pins, 3 sensors, LED, buzzer,
  broker connected, keepalive 30 s, systemd watchdog 30 s), mqtt-io (when it installs)
  and the bare paho client, side by side; counted over ``BENCH_CG_IDLE_S`` seconds
  (default 60) starting ``BENCH_SETTLE_S`` (default 5) after each one's first publish,
  and given per minute. Timers run on the wall clock, so the count per minute is the
  same however slow valgrind makes the work.

Needs valgrind (``apt-get install valgrind``; ``.ci/ensure-tools`` installs it as root) and
the right to ptrace one's own processes (``callgrind_control`` uses ``vgdb``). Without
valgrind the bench prints a note and returns 0.

Run: ``python -m bench instructions``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, IO, List, Optional

REPO = Path(__file__).resolve().parent.parent
CG_ENV = {"PYTHONHASHSEED": "0"}


def valgrind_missing() -> Optional[str]:
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install valgrind"
    return None


def callgrind_argv(out: Path) -> List[str]:
    return ["valgrind", "--tool=callgrind", "--vgdb=yes", f"--callgrind-out-file={out}"]


def zero(pid: int) -> None:
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True,
                   timeout=300)


def dump(pid: int, out: Path) -> int:
    """Dump ``pid``'s counters now; the instructions counted since the last zero."""
    before = set(out.parent.glob(out.name + ".*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True,
                   timeout=300)
    new = sorted(set(out.parent.glob(out.name + ".*")) - before)
    if not new:
        raise RuntimeError(f"callgrind wrote no dump for {pid} beside {out}")
    return instructions(new[-1])


def instructions(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"{path}: no summary line")


def _readline(stream: IO[str], want: str, proc: "subprocess.Popen[str]", timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stream.readline()
        if line.strip() == want:
            return
        if not line and proc.poll() is not None:
            raise RuntimeError(f"live driver exited ({proc.returncode}) before {want!r}")
    raise RuntimeError(f"live driver printed no {want!r} within {timeout:.0f} s")


def live_path(broker: Any, folder: Path, mode: str, n: int, warmup: int = 10) -> float:
    """Instructions per event of ``bench/live_driver.py`` in ``mode`` (``ours`` / ``paho``)."""
    out = folder / f"live-{mode}.cg"
    env = dict(os.environ, PYTHONPATH=str(REPO), **CG_ENV)
    settings = {"mode": mode, "host": broker.host, "port": broker.plain_port, "user": "device",
                "password": broker.users["device"], "prefix": broker.prefix,
                "state_dir": str(folder / f"live-{mode}"), "warmup": warmup}
    with open(folder / f"live-{mode}.txt", "w") as log:
        proc = subprocess.Popen([*callgrind_argv(out), sys.executable, "-m", "bench.live_driver"],
                                env=env, cwd=str(REPO), text=True, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=log)
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(settings) + "\n")
            proc.stdin.flush()
            _readline(proc.stdout, "ready", proc, 900)
            zero(proc.pid)
            proc.stdin.write(f"go {n}\n")
            proc.stdin.flush()
            _readline(proc.stdout, "done", proc, 900)
            count = dump(proc.pid, out)
            proc.stdin.close()
            proc.wait(120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    return count / n


def idle_minute(broker: Any, folder: Path, idle_s: float, settle_s: float) -> Dict[str, float]:
    """Instructions per idle minute of each ``bench daemon`` contender, side by side."""
    from bench.bench_daemon import Watcher, contenders

    runners, note = contenders(folder, broker, lambda name: callgrind_argv(folder / f"idle-{name}.cg"))
    print(f"  idle: {note}", flush=True)
    for r in runners:
        r.env.update(CG_ENV)
    watcher = Watcher(broker)
    try:
        for r in runners:   # one at a time: start-up under valgrind is slow and CPU-bound
            r.start()
            r.first_publish(watcher, timeout=900)
        time.sleep(settle_s)
        for r in runners:
            assert r.proc is not None
            zero(r.proc.pid)
        time.sleep(idle_s)   # the idle time is what is measured: nothing to wait on
        counts = {}
        for r in runners:
            assert r.proc is not None
            counts[r.name] = dump(r.proc.pid, folder / f"idle-{r.name}.cg") * 60 / idle_s
        return counts
    finally:
        for r in runners:
            r.stop()
            close = getattr(r, "close", None)
            if close is not None:
                close()
        watcher.close()


def main(argv: Optional[List[str]] = None) -> int:
    missing = valgrind_missing()
    if missing:
        print(f"  skipped: {missing}")
        return 0
    sys.path.insert(0, str(REPO))
    from tests.broker import MosquittoBroker, make_test_pki

    n = int(os.environ.get("BENCH_CG_EVENTS", "100"))
    idle_s = float(os.environ.get("BENCH_CG_IDLE_S", "60"))
    settle_s = float(os.environ.get("BENCH_SETTLE_S", "5"))
    folder = Path(tempfile.mkdtemp(prefix="bench-instructions-"))
    broker = MosquittoBroker(folder / "broker", make_test_pki(folder / "pki")).start()
    try:
        ours, base = live_path(broker, folder, "ours", n), live_path(broker, folder, "paho", n)
        print(f"callgrind, {n} events one at a time (MQTT 5 loopback, QoS 1), instructions per event:")
        print(f"  ours (record, sign, commit, publish, PUBACK, delete): {ours:12,.0f}")
        print(f"  raw paho publish + PUBACK, same payload (baseline):  {base:12,.0f}")
        print(f"  ratio ours/paho: {ours / base:.1f}", flush=True)
        idle = idle_minute(broker, folder, idle_s, settle_s)
        print(f"callgrind, instructions per idle minute ({idle_s:.0f} s counted):")
        for name, count in idle.items():
            ratio = "".join(f"  ours/{other} {idle['ours'] / v:.2f}"
                            for other, v in idle.items() if other != name and name == "ours" and v)
            print(f"  {name:8} {count:14,.0f}{ratio}")
    finally:
        broker.kill()
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Runs inside the gpio-sim guest (PID 1's child): the whole agent on a real GPIO chip.

It creates a gpio-sim chip (a real /dev/gpiochipN whose lines sysfs can drive), starts
mosquitto and ``python3 -m agent run`` with ``gpio.backend: lgpio`` on that chip, then
flips the sim lines on a scripted timeline. Two things are watched: what the broker
received (a subscriber, like the cloud side) and the agent's log, whose ``event`` lines
are written only once an event is committed to the outbox (agent/pipeline.py), which
timestamps flip -> commit. Everything is printed to the serial console as ``HCVM {json}``
lines; the host-side test (tests/gpio_vm/test_gpio_vm.py) asserts on them. The driver
itself asserts nothing, so one boot reports every case.

Python 3.11 inside the guest only; it imports the project's dependencies (paho, PyJWT,
lgpio), which the image has.
"""
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HC = Path("/hc")                 # this run's overlay (read-only by convention)
WORK = Path("/tmp/hc")
DEVICE = "gw-vm"
PREFIX = f"homecare/{DEVICE}"
NUM_LINES = 28                   # GPIO0-27: the lines gpiozero knows
#: sensor -> (BCM line, active low?)
SENSORS = {"sos": (17, True), "sos_timing": (16, True), "front_door": (27, False),
           "back_door": (26, False), "smoke": (22, True)}
BUZZER, LED = 5, 6
REVISION = "a02082"              # the override: wire like a Pi 3B
TIMING_PRESSES = int(os.environ.get("HCVM_PRESSES", "100"))
T0 = time.monotonic()


def out(kind: str, **data: Any) -> None:
    print("HCVM " + json.dumps({"kind": kind, "t": round(time.monotonic() - T0, 4), **data}),
          flush=True)


def now() -> float:
    return time.monotonic()


# --------------------------------------------------------------------- the sim chip
class SimChip:
    """One gpio-sim bank of NUM_LINES lines, made through configfs."""

    def __init__(self) -> None:
        dev = Path("/sys/kernel/config/gpio-sim/hc")
        bank = dev / "bank0"
        dev.mkdir()
        bank.mkdir()
        (bank / "num_lines").write_text(str(NUM_LINES))
        (bank / "label").write_text("homecare-sim")
        (dev / "live").write_text("1")
        self.chip_name = (bank / "chip_name").read_text().strip()       # gpiochipN
        self.chip = int(self.chip_name[len("gpiochip"):])
        self.sysdir = Path(f"/sys/devices/platform/{(dev / 'dev_name').read_text().strip()}"
                           f"/{self.chip_name}")

        self._pull_fds: Dict[int, int] = {}

    def set(self, line: int, high: bool) -> float:
        """Drive the line's simulated pull; returns the monotonic time of the write.

        One open file per line, written at offset 0: an open() per flip would cap the
        flip rate under emulation far below the bursts the cases need."""
        fd = self._pull_fds.get(line)
        if fd is None:
            fd = self._pull_fds[line] = os.open(self.sysdir / f"sim_gpio{line}" / "pull", os.O_WRONLY)
        t = now()
        os.pwrite(fd, b"pull-up" if high else b"pull-down", 0)
        return t

    def value(self, line: int) -> int:
        with open(self.sysdir / f"sim_gpio{line}" / "value") as f:
            return int(f.read().strip())


SIM: SimChip


def drive(sensor: str, active: bool) -> float:
    line, active_low = SENSORS[sensor]
    return SIM.set(line, active != active_low)


class Sampler:
    """Reads the output lines back every few ms in a thread: ``(time, led, buzzer)``."""

    def __init__(self, every: float = 0.004) -> None:
        self.rows: List[Tuple[float, int, int]] = []
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.rows.append((now(), SIM.value(LED), SIM.value(BUZZER)))
            time.sleep(self._every)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def window(self, t0: float, t1: float) -> Dict[str, float]:
        rows = [r for r in self.rows if t0 <= r[0] < t1]
        led, buz = [r[1] for r in rows], [r[2] for r in rows]
        return {"samples": len(rows), "led_rises": rises(led), "buzzer_rises": rises(buz),
                "led_on": round(sum(led) / max(1, len(led)), 3),
                "buzzer_on": round(sum(buz) / max(1, len(buz)), 3)}


def rises(values: List[int]) -> int:
    return sum(1 for a, b in zip(values, values[1:]) if not a and b)


# --------------------------------------------------------------- the agent's log
COMMIT = re.compile(r"\bevent (\S+) sensor=(\S+) seq=(\d+) prio=\S+ ts=\S+ jti=(\S+) data=(.*)$")


class AgentProcess:
    """``python3 -m agent run``; its log lines are read as they come, with their time."""

    def __init__(self, config: Path) -> None:
        self.commits: List[Dict[str, Any]] = []
        self.repair_warnings = 0
        self.lines: List[str] = []
        self.cond = threading.Condition()
        self.proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "--config", str(config)],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     bufsize=1, cwd=str(WORK))
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t = now()
            line = line.rstrip("\n")
            print("HCVM-AGENT " + line, flush=True)
            with self.cond:
                self.lines.append(line)
                m = COMMIT.search(line)
                if m:
                    self.commits.append({"t": t, "type": m.group(1), "sensor": m.group(2),
                                         "seq": int(m.group(3)), "jti": m.group(4),
                                         "data": m.group(5)})
                if "no edge was seen; repairing" in line:
                    self.repair_warnings += 1
                self.cond.notify_all()

    def wait_commit(self, pred: Callable[[Dict[str, Any]], bool], since: int,
                    timeout: float) -> Optional[Dict[str, Any]]:
        """The first commit at index >= ``since`` matching ``pred``, or None at the timeout."""
        end = now() + timeout
        with self.cond:
            while True:
                for c in self.commits[since:]:
                    if pred(c):
                        return c
                left = end - now()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self.cond.wait(left)

    def mark(self) -> int:
        with self.cond:
            return len(self.commits)


# ------------------------------------------------------------- the cloud side
def b64json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


class Observer:
    """Subscribes like the cloud side: every event the broker received, with its time."""

    def __init__(self) -> None:
        import paho.mqtt.client as mqtt

        self.msgs: List[Dict[str, Any]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hcvm-observer",
                                  protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", 1883)
        self.client.subscribe(f"{PREFIX}/#", qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        t = now()
        entry: Dict[str, Any] = {"t": t, "topic": msg.topic}
        if "/events/" in msg.topic:
            entry["claims"] = b64json(msg.payload.decode("ascii").split(".")[1])
        with self.lock:
            self.msgs.append(entry)

    def events(self) -> List[Dict[str, Any]]:
        with self.lock:
            return [m for m in self.msgs if "claims" in m]

    def wait(self, pred: Callable[[Dict[str, Any]], bool], timeout: float) -> bool:
        end = now() + timeout
        while now() < end:
            if any(pred(m["claims"]) for m in self.events()):
                return True
            time.sleep(0.02)
        return False

    def publish_command(self, token: str) -> None:
        self.client.publish(f"{PREFIX}/commands", token, qos=1).wait_for_publish(10)


def sign_command(cmd: str, **extra: Any) -> str:
    import jwt

    iat = int(time.time())
    claims = {"aud": DEVICE, "jti": str(uuid.uuid4()), "iat": iat, "exp": iat + 300, "cmd": cmd,
              **extra}
    key = (HC / "cloud-key.pem").read_bytes()
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"typ": "homecare-command+jwt"})


# ---------------------------------------------------------------------- set-up
def config_text(chip: int, override: bool) -> str:
    gpio = f"{{backend: lgpio, chip: {chip}, board_revision: {REVISION}}}" if override \
        else "{backend: lgpio}"
    kinds = {"sos": ("sos_button", ""), "sos_timing": ("sos_button", ", flapping: false"),
             "front_door": ("door", ""), "back_door": ("door", ", flapping: false"),
             "smoke": ("smoke", ", clear_ms: 3000")}
    sensors = "\n".join(
        f"  - {{name: {name}, kind: {kinds[name][0]}, pin: {line}, pull: up, "
        f"active: {'low' if low else 'high'}{kinds[name][1]}}}"
        for name, (line, low) in SENSORS.items())
    return f"""\
device: {{id: {DEVICE}}}
state_dir: {WORK}/state
gpio: {gpio}
sensors:
{sensors}
outputs:
  buzzer: {{pin: {BUZZER}, active: high}}
  led: {{pin: {LED}, active: high}}
mqtt: {{host: 127.0.0.1, port: 1883, tls: false}}
signing: {{key_file: {WORK}/device-key.pem}}
commands: {{key_file: {HC}/cloud-public.pem}}
heartbeat_s: 10
"""


def start_broker() -> subprocess.Popen:
    conf = WORK / "mosquitto.conf"
    conf.write_text("listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "user root\nlog_dest stderr\nlog_type error\n")
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)])
    end = now() + 30
    while now() < end:
        try:
            socket.create_connection(("127.0.0.1", 1883), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("mosquitto did not start in the guest")


def refusal_without_override() -> None:
    """docs/spec.md §2: lgpio on a board without a Pi revision code must refuse to start."""
    cfg = WORK / "no-override.yaml"
    cfg.write_text(config_text(SIM.chip, override=False).replace(f"{WORK}/state",
                                                                   f"{WORK}/state-refusal"))
    t = now()
    r = subprocess.run([sys.executable, "-m", "agent", "run", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=120, cwd=str(WORK))
    out("refusal", rc=r.returncode, s=round(now() - t, 2), output=(r.stdout + r.stderr)[-1500:])


# ----------------------------------------------------------------------- cases
class Run:
    def __init__(self, agent: AgentProcess, obs: Observer, broker: subprocess.Popen) -> None:
        self.agent, self.obs, self.broker = agent, obs, broker

    def case(self, name: str, body: Callable[[], Dict[str, Any]], settle: float) -> None:
        t0 = now()
        out("case-start", name=name)
        try:
            info = body()
        except Exception as exc:  # reported, so later cases still run
            info = {"error": f"{type(exc).__name__}: {exc}"}
        time.sleep(settle)
        out("case", name=name, t0=t0, t1=now(), info=info)

    def press(self, sensor: str, hold_s: float) -> Dict[str, Any]:
        t_down = drive(sensor, True)
        time.sleep(hold_s)
        t_up = drive(sensor, False)
        return {"down": t_down, "up": t_up, "held_s": t_up - t_down}

    def glitch(self) -> Dict[str, Any]:
        return self.press("sos", 0.010)

    def sos_50(self) -> Dict[str, Any]:
        return self.press("sos", 0.050)

    def sos_35(self) -> Dict[str, Any]:
        return self.press("sos", 0.035)

    def outputs(self) -> Dict[str, Any]:
        """LED/buzzer read back: pending (broker paused), sent, then steady after ack."""
        info: Dict[str, Any] = {}
        sampler = Sampler()
        try:
            self.broker.send_signal(signal.SIGSTOP)   # no PUBACK: the alarm stays pending
            try:
                info["press"] = self.press("sos", 0.100)
                t_pending = info["press"]["down"]
                time.sleep(1.6)
            finally:
                self.broker.send_signal(signal.SIGCONT)
            info["pending"] = sampler.window(t_pending, t_pending + 1.6)
            self.obs.wait(lambda c: c["type"] == "sos.released" and c["sensor"] == "sos"
                          and c["data"].get("held_ms", 0) >= 80, 20)
            t_sent = now() + 0.3
            time.sleep(4.3)
            info["sent"] = sampler.window(t_sent, t_sent + 4.0)
            since = self.agent.mark()
            self.obs.publish_command(sign_command("ack"))
            done = self.agent.wait_commit(lambda c: c["type"] == "command.done", since, 20)
            info["ack_done"] = done is not None
            t_acked = now() + 0.3
            time.sleep(1.8)
            info["acked"] = sampler.window(t_acked, t_acked + 1.5)
        finally:
            sampler.stop()
        return info

    def rattle(self) -> Dict[str, Any]:
        """Door edges 20 ms apart for 400 ms, ending closed as it began."""
        edges, t0 = 0, now()
        for i in range(20):
            drive("front_door", i % 2 == 0)
            edges += 1
            time.sleep(max(0.0, t0 + (i + 1) * 0.020 - now()))
        drive("front_door", False)
        return {"edges": edges + 1, "s": now() - t0}

    def burst(self) -> Dict[str, Any]:
        """1 kHz for 1 s on back_door (flapping off), ending open. Edges the kernel or
        lgpio loses must not leave the agent in a stale level: the periodic re-read
        repairs it. The writer runs SCHED_FIFO so the emulated guest keeps the 1 kHz
        pace (about 900 flips/s otherwise); the rate reached is reported."""
        since = self.agent.mark()
        repairs_before = self.agent.repair_warnings
        edges, t0 = 0, now()
        level = False
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(99))
        try:
            while now() - t0 < 1.0:
                level = not level
                drive("back_door", level)
                edges += 1
                pause = t0 + edges * 0.001 - now()    # no sleep at all once behind 1 kHz
                if pause > 0:
                    time.sleep(pause)
            if not level:
                drive("back_door", True)
                edges += 1
        finally:
            os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
        t_end = now()
        opened = self.agent.wait_commit(lambda c: c["type"] == "door.opened"
                                        and c["sensor"] == "back_door", since, 15)
        repairs = self.agent.repair_warnings - repairs_before
        hb_since = self.agent.mark()
        heartbeat = self.agent.wait_commit(lambda c: c["type"] == "agent.heartbeat", hb_since, 25)
        return {"edges": edges, "s": t_end - t0,
                "opened_after_s": None if opened is None else opened["t"] - t_end,
                "repair_warnings": repairs, "repairs_total": self.agent.repair_warnings,
                "heartbeat_data": None if heartbeat is None else self._received_data(heartbeat)}

    def _received_data(self, commit: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The ``data`` of a committed event as the broker delivered it (the log line
        shortens it; the signed event is the record)."""
        def same(c: Dict[str, Any]) -> bool:
            return c["type"] == commit["type"] and c["seq"] == commit["seq"]
        self.obs.wait(same, 15)
        found = [m["claims"] for m in self.obs.events() if same(m["claims"])]
        return found[0]["data"] if found else None

    def smoke(self) -> Dict[str, Any]:
        """Temporal pattern: three 200 ms pulses 500 ms apart, then quiet."""
        for _ in range(3):
            drive("smoke", True)
            time.sleep(0.2)
            drive("smoke", False)
            time.sleep(0.3)
        since = self.agent.mark()
        self.agent.wait_commit(lambda c: c["type"] == "smoke.cleared", since, 15)
        return {}

    def timing(self) -> Dict[str, Any]:
        """Flip -> committed, over many presses, one at a time."""
        lat_press: List[float] = []
        lat_release: List[float] = []
        lost = 0
        for _ in range(TIMING_PRESSES):
            for level, event_type, latencies in ((True, "sos.pressed", lat_press),
                                                 (False, "sos.released", lat_release)):
                latency = self._flip_to_commit(level, event_type)
                if latency is None:
                    lost += 1
                else:
                    latencies.append(latency)
            time.sleep(0.02)
        return {"presses": TIMING_PRESSES, "lost": lost, "press_s": lat_press,
                "release_s": lat_release}

    def _flip_to_commit(self, level: bool, event_type: str) -> Optional[float]:
        """Drive sos_timing to ``level``; seconds until ``event_type`` is committed (None: lost)."""
        since = self.agent.mark()
        t_flip = drive("sos_timing", level)
        c = self.agent.wait_commit(lambda c: c["type"] == event_type
                                   and c["sensor"] == "sos_timing", since, 3)
        return None if c is None else c["t"] - t_flip

    def sigterm(self) -> Dict[str, Any]:
        import lgpio

        t = now()
        self.agent.proc.send_signal(signal.SIGTERM)
        try:
            rc: Optional[int] = self.agent.proc.wait(60)
        except subprocess.TimeoutExpired:
            rc = None
        took = now() - t
        lines = [line for line, _ in SENSORS.values()] + [BUZZER, LED]
        free: Dict[str, str] = {}
        h = lgpio.gpiochip_open(SIM.chip)
        for line in lines:
            try:
                lgpio.gpio_claim_input(h, line)
                lgpio.gpio_free(h, line)
                free[str(line)] = "free"
            except lgpio.error as exc:
                free[str(line)] = f"busy: {exc}"
        lgpio.gpiochip_close(h)
        return {"rc": rc, "s": took, "lines": free}


def main() -> int:
    global SIM
    WORK.mkdir(parents=True, exist_ok=True)
    SIM = SimChip()
    out("chip", chip=SIM.chip, name=SIM.chip_name, arch=os.uname().machine,
        kernel=os.uname().release)
    broker = start_broker()
    r = subprocess.run([sys.executable, "-m", "agent", "keygen", "--out", str(WORK / "device-key.pem")],
                       capture_output=True, text=True, cwd=str(WORK))
    if r.returncode:
        out("fatal", what="keygen", output=r.stdout + r.stderr)
        return 1
    refusal_without_override()
    obs = Observer()
    (WORK / "config.yaml").write_text(config_text(SIM.chip, override=True))
    t_start = now()
    agent = AgentProcess(WORK / "config.yaml")
    started = agent.wait_commit(lambda c: c["type"] == "agent.started", 0, 120)
    out("started", ok=started is not None, s=round(now() - t_start, 2))
    if started is None:
        agent.proc.kill()
        return 1
    # the idle levels: every sensor inactive (the pull-up bias already made the doors
    # read open: close them), then let every start-up report and window settle
    for sensor in SENSORS:
        drive(sensor, False)
    time.sleep(3)
    run = Run(agent, obs, broker)
    run.case("glitch_10ms", run.glitch, settle=0.5)
    run.case("sos_50ms", run.sos_50, settle=0.5)
    run.case("sos_35ms", run.sos_35, settle=0.5)
    run.case("outputs", run.outputs, settle=0.2)
    run.case("door_rattle", run.rattle, settle=1.5)
    run.case("burst_1khz", run.burst, settle=0.2)
    run.case("smoke_pulsed", run.smoke, settle=0.2)
    run.case("timing", run.timing, settle=1.0)
    time.sleep(1.0)                      # the last PUBACKs
    run.case("sigterm", run.sigterm, settle=0.0)
    obs.client.loop_stop()
    for m in obs.events():
        out("msg", at=m["t"], topic=m["topic"], claims=m["claims"])
    for c in agent.commits:
        out("commit", at=c["t"], **{k: v for k, v in c.items() if k != "t"})
    out("done", repair_warnings=agent.repair_warnings)
    broker.terminate()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:
        import traceback
        traceback.print_exc()
        out("fatal", what=f"{type(exc).__name__}: {exc}")
        sys.exit(1)

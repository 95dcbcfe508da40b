"""`homecare-agent status` after real runs (subprocesses, real broker) and `monitor` on mock pins.

status: on a fresh state folder; after `simulate` offline (events waiting, per lane, as
the outbox holds them); after `simulate` online (nothing waiting, the run's connection
figures); while `run` is connected; with a damaged outbox file.
monitor: in a thread on the test's MockFactory, driven through gpiozero mock pins.
"""
from __future__ import annotations

import argparse
import io
import json
import re
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Dict, Iterator, Tuple

import pytest

from agent.cli import monitor
from agent.errors import OutboxError, WiringError
from agent.outbox.readonly import read_only_summary
from tests.agent_files import AgentFiles, files_for_broker, run_simulate, write_agent_files
from tests.broker import MosquittoBroker, free_port
from tests.helpers import cli_command, cli_env, run_cli, wait_until

TIMELINE = """
- {at: 0.0, sensor: front_door, level: inactive}
- {at: 0.5, sensor: sos, level: active}
- {at: 1.0, sensor: sos, level: inactive}
- {at: 1.2, sensor: front_door, level: active}
"""


def status_lines(files: AgentFiles) -> Dict[str, str]:
    """Run `status`; returns {first word: line} for the single lines, plus the full text."""
    result = run_cli("status", "--config", str(files.config))
    assert result.returncode == 0, result.stderr
    return {"text": result.stdout, **{line.split(":", 1)[0]: line
                                      for line in result.stdout.splitlines()}}


def sensor_line(text: str, name: str) -> str:
    [line] = [ln for ln in text.splitlines() if ln.startswith("sensor:") and f" {name} " in ln]
    return line


def lanes_in_outbox(files: AgentFiles) -> Tuple[int, int]:
    db = sqlite3.connect(f"file:{files.state_dir / 'outbox.sqlite3'}?mode=ro", uri=True)
    try:
        got = dict(db.execute("SELECT critical, count(*) FROM outbox GROUP BY critical").fetchall())
    finally:
        db.close()
    return got.get(1, 0), got.get(0, 0)


def test_status_on_a_fresh_state_folder_says_nothing_has_run(tmp_path: Path) -> None:
    files = write_agent_files(tmp_path / "agent", port=free_port())
    result = run_cli("status", "--config", str(files.config))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "has not run with this state folder yet" in out
    assert "outbox:     none yet" in out and "0 waiting" in out
    for name in ("sos", "front_door", "kitchen_smoke"):
        assert "last none yet" in sensor_line(out, name)
    assert "Traceback" not in out


def test_status_after_an_offline_simulate_shows_what_waits_per_lane(tmp_path: Path) -> None:
    port = free_port()
    files = write_agent_files(tmp_path / "agent", port=port)   # nobody listens there
    sim = run_simulate(files, TIMELINE, speed=10, timeout=1.5)
    assert sim.returncode == 3, sim.stderr          # still buffered at the timeout
    critical, normal = lanes_in_outbox(files)
    assert critical >= 2 and normal >= 4            # sos.pressed + smoke.cleared; the rest
    got = status_lines(files)
    out = got["text"]
    assert re.search(rf"outbox: +critical +{critical} waiting, oldest \d+ s", out), out
    assert re.search(rf"outbox: +normal +{normal} waiting, oldest \d+ s", out), out
    assert "NOT running" in got["agent"]            # simulate has exited
    assert "NOT connected, never was" in got["broker"] and "0 delivered" in got["broker"]
    assert "Connection refused" in got["broker"]     # the last error, as the publisher saw it
    assert f"never was in that run (127.0.0.1:{port})" in got["broker"]  # the one being tried
    sos = sensor_line(out, "sos")
    assert "state released" in sos and "raw inactive" in sos and "last sos.released" in sos
    door = sensor_line(out, "front_door")
    assert "state open" in door and "raw active" in door and "last door.opened" in door
    assert "last smoke.cleared" in sensor_line(out, "kitchen_smoke")
    # the seq shown is the one in the outbox for that event
    seq = int(re.search(r"last sos.released at \S+ \(seq (\d+)\)", sos).group(1))  # type: ignore[union-attr]
    db = sqlite3.connect(f"file:{files.state_dir / 'outbox.sqlite3'}?mode=ro", uri=True)
    assert db.execute("SELECT type FROM outbox WHERE seq = ?", (seq,)).fetchone() == ("sos.released",)
    db.close()


@pytest.mark.broker
def test_status_after_an_online_simulate_shows_nothing_waiting(tmp_path: Path,
                                                                broker: MosquittoBroker) -> None:
    files = files_for_broker(tmp_path / "agent", broker)
    sim = run_simulate(files, TIMELINE, speed=10, timeout=20)
    assert sim.returncode == 0, sim.stderr
    delivered = int(re.search(r"(\d+) delivered", sim.stdout).group(1))  # type: ignore[union-attr]
    assert delivered >= 7
    got = status_lines(files)
    out = got["text"]
    assert re.search(r"outbox: +critical +0 waiting, oldest -", out), out
    assert re.search(r"outbox: +normal +0 waiting, oldest -", out), out
    assert "evictions:  0 normal, 0 critical" in out
    snap = json.loads((files.state_dir / "status.json").read_text())
    link = snap["link"]
    assert link["connects"] >= 1 and link["delivered"] == delivered
    assert f"{link['connects']} connects" in got["broker"]
    assert f"{delivered} delivered, 0 refused in that run" in got["broker"]
    assert "last door.opened" in sensor_line(out, "front_door")


@pytest.mark.broker
def test_status_shows_publishes_the_broker_refused(tmp_path: Path, broker: MosquittoBroker) -> None:
    """MQTT 5, a topic prefix the ACL refuses: every event is PUBACKed 0x87 and kept."""
    import yaml

    files = files_for_broker(tmp_path / "agent", broker)
    data = yaml.safe_load(files.config.read_text())
    data["mqtt"]["topic_prefix"] = "homecare/someone-else"
    files.config.write_text(yaml.safe_dump(data, sort_keys=False))
    sim = run_simulate(files, TIMELINE, speed=10, timeout=3)
    assert sim.returncode == 3, sim.stderr            # nothing could be delivered
    link = json.loads((files.state_dir / "status.json").read_text())["link"]
    assert link["rejected"] >= 7 and link["last_rejected_reason"] == 0x87
    got = status_lines(files)
    assert f"0 delivered, {link['rejected']} refused in that run" in got["broker"], got["broker"]
    assert re.search(r"refused: +\d+ publishes refused by the broker in that run; last reason "
                     r"0x87 \(not authorized\) \d+ s ago", got["text"]), got["text"]


@pytest.mark.broker
@pytest.mark.slow
def test_status_of_a_running_connected_daemon(tmp_path: Path, broker: MosquittoBroker) -> None:
    files = files_for_broker(tmp_path / "agent", broker)
    stderr = open(tmp_path / "stderr.txt", "w")
    proc = subprocess.Popen(cli_command("run", "--config", str(files.config)), env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=stderr)
    status_file = files.state_dir / "status.json"

    def settled() -> bool:
        try:
            snap = json.loads(status_file.read_text())
        except (OSError, ValueError):
            return False
        return bool(snap["link"]["connected"]) and len(snap["last_events"]) == 4
    try:
        wait_until(settled, timeout=15, what="a connected status.json with the start-up reports",
                   interval=0.05)
        got = status_lines(files)
        assert got["agent"].startswith(f"agent:      running, pid {proc.pid}")
        assert "connected for" in got["broker"] and "NOT" not in got["broker"]
        assert "1 connects" in got["broker"]
        assert f"({broker.host}:{broker.plain_port})" in got["broker"]   # the endpoint in use
        assert "state open" in sensor_line(got["text"], "front_door")   # pull-up reads open
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        stderr.close()
    assert "NOT running" in status_lines(files)["agent"]   # the pid has gone


def test_status_names_a_damaged_outbox_instead_of_a_traceback(tmp_path: Path) -> None:
    files = write_agent_files(tmp_path / "agent", port=free_port())
    files.state_dir.mkdir()
    (files.state_dir / "outbox.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="cannot read the outbox"):
        read_only_summary(files.state_dir / "outbox.sqlite3")
    result = run_cli("status", "--config", str(files.config))
    assert result.returncode == 1
    assert "cannot read the outbox" in result.stderr and "Traceback" not in result.stderr


def test_status_shows_free_disk_under_the_floor(tmp_path: Path) -> None:
    """docs/spec.md §6: free space below buffer.min_free_mb is shown by status."""
    huge = 10**9                                    # MB: no test machine has that free
    files = write_agent_files(tmp_path / "agent", port=free_port(),
                              extra={"buffer": {"min_free_mb": huge}})
    result = run_cli("status", "--config", str(files.config))
    assert result.returncode == 0, result.stderr
    line = next(l for l in result.stdout.splitlines() if l.startswith("disk:"))
    assert "LOW" in line and f"min_free_mb {huge}" in line
    files = write_agent_files(tmp_path / "other", port=free_port(),
                              extra={"buffer": {"min_free_mb": 0}})
    result = run_cli("status", "--config", str(files.config))
    line = next(l for l in result.stdout.splitlines() if l.startswith("disk:"))
    assert "LOW" not in line and "MB free" in line


# --------------------------------------------------------------------------- monitor
class Monitor:
    """``monitor.main`` in a thread on the test's MockFactory; output in a StringIO."""

    def __init__(self, files: AgentFiles, factory: object) -> None:
        self.out = io.StringIO()
        self.stop = threading.Event()
        self.result: Dict[str, object] = {}
        args = argparse.Namespace(config=str(files.config))

        def run() -> None:
            try:
                self.result["status"] = monitor.main(args, pin_factory=factory, out=self.out,
                                                     run_for_s=30, stop_event=self.stop)
            except BaseException as exc:  # surfaced by the test
                self.result["error"] = exc
        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def lines(self) -> list:  # type: ignore[type-arg]
        return self.out.getvalue().splitlines()

    def wait_line(self, pattern: str, count: int = 1, timeout: float = 5.0) -> None:
        wait_until(lambda: sum(bool(re.search(pattern, ln)) for ln in self.lines()) >= count,
                   timeout=timeout, what=f"{count} line(s) matching {pattern!r}:\n{self.out.getvalue()}")

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        assert not self.thread.is_alive()
        if "error" in self.result:
            raise self.result["error"]  # type: ignore[misc]
        assert self.result["status"] == 0


@pytest.fixture
def files(tmp_path: Path) -> AgentFiles:
    return write_agent_files(tmp_path / "agent", port=free_port())


@pytest.fixture
def running_monitor(files: AgentFiles, mock_factory: object) -> Iterator[Monitor]:
    m = Monitor(files, mock_factory)
    yield m
    m.close()


def test_monitor_shows_raw_edges_and_debounced_sos_events(running_monitor: Monitor,
                                                          mock_factory: object) -> None:
    m = running_monitor
    m.wait_line(r"monitoring 3 sensors")
    m.wait_line(r"sos +sos.released +state=released \(initial=True\)")     # start-up reports
    m.wait_line(r"kitchen_smoke +smoke.cleared +state=clear \(initial=True\)")
    m.wait_line(r"front_door +door.opened +state=open \(initial=True\)")   # pull-up reads open
    pin = mock_factory.pin(17)  # type: ignore[attr-defined]
    pin.drive_low()                                  # press (active low)
    m.wait_line(r"sos +raw -> active")
    m.wait_line(r"sos +sos.pressed +state=pressed$")
    pin.drive_high()                                 # release
    m.wait_line(r"sos +raw -> inactive")
    m.wait_line(r"sos +sos.released +state=released \(held_ms=\d+\)")
    # a glitch: two raw edges shown, no debounced event; then a real press is one event
    before = sum("sos.pressed" in ln for ln in m.lines())
    pin.drive_low()
    pin.drive_high()
    m.wait_line(r"sos +raw -> inactive", count=2)
    m.wait_line(r"sos +raw -> active", count=2)
    pin.drive_low()
    m.wait_line(r"sos +raw -> active", count=3)
    m.wait_line(r"sos +sos.pressed", count=before + 1)
    m.stop.set()
    m.thread.join(5)
    pressed = [ln for ln in m.lines() if "sos.pressed" in ln]
    assert len(pressed) == before + 1, m.out.getvalue()   # the glitch made no event
    assert sum("sos.released" in ln for ln in m.lines()) == 2   # start-up + the real release
    sos = [ln.split(None, 2)[2] for ln in m.lines() if " sos " in ln]
    assert sos.index("raw -> active") < next(i for i, x in enumerate(sos)
                                             if x.startswith("sos.pressed"))


def test_monitor_door_rattle_is_raw_only_and_closing_waits_for_its_window(
        running_monitor: Monitor, mock_factory: object) -> None:
    m = running_monitor
    m.wait_line(r"front_door +door.opened +state=open \(initial=True\)")
    door = mock_factory.pin(27)  # type: ignore[attr-defined]
    door.drive_low()                                 # closing (active high), with a rattle
    door.drive_high()
    door.drive_low()
    m.wait_line(r"front_door +raw -> inactive", count=2)
    m.wait_line(r"front_door +raw -> active")
    m.wait_line(r"front_door +door.closed +state=closed$", timeout=5)   # after close_ms 1000
    closed_at = float(next(ln for ln in m.lines() if "door.closed" in ln).split("s", 1)[0])
    last_raw = float([ln for ln in m.lines() if "front_door" in ln and "raw ->" in ln][-1]
                     .split("s", 1)[0])
    assert closed_at - last_raw == pytest.approx(1.0, abs=0.005)   # window from the last edge
    assert not any("door.opened" in ln and "initial" not in ln for ln in m.lines())


def test_monitor_names_a_pin_already_in_use_and_releases_the_others(files: AgentFiles,
                                                                    mock_factory: object) -> None:
    from gpiozero import DigitalInputDevice

    squatter = DigitalInputDevice(22, pin_factory=mock_factory)   # the smoke input's pin
    out = io.StringIO()
    try:
        with pytest.raises(WiringError) as caught:
            monitor.main(argparse.Namespace(config=str(files.config)), pin_factory=mock_factory,
                         out=out, run_for_s=1)
    finally:
        squatter.close()
    message = str(caught.value)
    assert "kitchen_smoke" in message and "GPIO22" in message
    assert "in use" in message                       # gpiozero's words, kept
    assert "not used by another sensor, output or program" in message   # what to do
    # the pins claimed before the failure were given back
    for pin in (17, 27, 22):
        DigitalInputDevice(pin, pin_factory=mock_factory).close()


def test_monitor_reads_pins_back_and_shows_a_lost_edge(running_monitor: Monitor,
                                                       mock_factory: object) -> None:
    m = running_monitor
    m.wait_line(r"sos +sos.released +state=released \(initial=True\)")
    # the pin goes low with no callback: what a backend that drops an edge looks like
    mock_factory.pin(17)._state = False  # type: ignore[attr-defined]
    m.wait_line(r"sos +raw -> active \(read back: no edge was reported", timeout=5)
    m.wait_line(r"sos +sos.pressed +state=pressed$")


def test_monitor_shows_both_contacts_of_a_form_c_smoke(tmp_path: Path, mock_factory: object) -> None:
    sensors = [{"name": "kitchen_smoke", "kind": "smoke", "pin": 22, "pin_nc": 24,
                "wiring_fault_ms": 200}]
    files = write_agent_files(tmp_path / "agent", port=free_port(), extra={"sensors": sensors})
    m = Monitor(files, mock_factory)
    try:
        m.wait_line(r"monitoring 1 sensors")
        # both pins float high on their pull-ups: the NC contact is not wired
        m.wait_line(r"kitchen_smoke +sensor.fault +state=clear no=inactive nc=inactive "
                    r"\(fault=wiring, levels=\{'no': 1, 'nc': 1\}\)")
        mock_factory.pin(24).drive_low()  # type: ignore[attr-defined]
        m.wait_line(r"kitchen_smoke.nc +raw -> active")
        m.wait_line(r"kitchen_smoke +sensor.recovered +state=clear no=inactive nc=active")
    finally:
        m.close()

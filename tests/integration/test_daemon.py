"""`homecare-agent run`, `simulate` and `demo` as a user would run them (subprocesses),
plus the watchdog contract, which is tested in-process where the loop can be frozen."""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator, List, Optional

import pytest

from agent.config.model import load_config
from agent.app.daemon import Agent
from agent.app.sdnotify import Notifier
from agent.record.signing import Verifier, ed25519_thumbprint
from tests.agent_files import AgentFiles, files_for_broker, run_simulate, write_agent_files
from tests.broker import MosquittoBroker, Subscriber, free_port
from tests.helpers import cli_command, cli_env, run_cli, wait_until

CLK_TCK = os.sysconf("SC_CLK_TCK")


class NotifySocket:
    """What systemd holds: an AF_UNIX datagram socket the service writes to."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: List[str] = []

    def expect(self, word: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while word not in self.messages:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {word} within {timeout} s; got {self.messages}")
            self.sock.settimeout(remaining)
            try:
                self.messages += self.sock.recv(4096).decode().split("\n")
            except socket.timeout:
                pass

    def drain(self) -> List[str]:
        got: List[str] = []
        self.sock.setblocking(False)
        try:
            while True:
                got += self.sock.recv(4096).decode().split("\n")
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        self.messages += got
        return got

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    n = NotifySocket(tmp_path / "notify.sock")
    yield n
    n.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK   # utime + stime


def start_run(files: AgentFiles, notify: NotifySocket, stderr: Path,
              watchdog_usec: int = 2_000_000) -> "subprocess.Popen[str]":
    env = cli_env({"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": str(watchdog_usec)})
    return subprocess.Popen(cli_command("run", "--config", str(files.config)), env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=open(stderr, "w"))


def stop(proc: "subprocess.Popen[str]", timeout: float = 10.0) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_run_is_ready_offline_idles_cheaply_and_stops_cleanly(tmp_path: Path,
                                                              notify: NotifySocket) -> None:
    files = write_agent_files(tmp_path / "agent", port=free_port())   # nobody listens there
    proc = start_run(files, notify, tmp_path / "stderr.txt")
    try:
        notify.expect("READY=1")            # offline is a normal state, not a failed start
        wait_until(lambda: (tmp_path / "stderr.txt").read_text().count('"initial":true') == 3,
                   timeout=10, what="the three start-up reports")
        before, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(30)                      # measuring idle CPU is the point: nothing to await
        used, elapsed = cpu_seconds(proc.pid) - before, time.monotonic() - t0
        pings = notify.drain().count("WATCHDOG=1")
        print(f"idle: {used:.3f} s CPU over {elapsed:.1f} s; {pings} watchdog pings")
        assert used < 0.1
        assert pings >= 10                  # every WATCHDOG_USEC/2 = 1 s while the loop lives
        t_stop = time.monotonic()
        assert stop(proc, timeout=10) == 0
        assert time.monotonic() - t_stop < 3.0 + 2.0   # flush budget + closing
    finally:
        if proc.poll() is None:
            proc.kill()
    notify.drain()
    assert "STOPPING=1" in notify.messages
    db = sqlite3.connect(f"file:{files.state_dir / 'outbox.sqlite3'}?mode=ro", uri=True)
    assert db.execute("PRAGMA quick_check").fetchone() == ("ok",)
    kept = [t for (t,) in db.execute("SELECT type FROM outbox ORDER BY seq")]
    db.close()
    # nothing was delivered: all of it is still on disk (the door's pull-up reads open)
    assert {"agent.started", "sos.released", "door.opened", "smoke.cleared"} <= set(kept)


def test_watchdog_pings_only_while_the_loop_is_alive(tmp_path: Path, mock_factory: object,
                                                    notify: NotifySocket) -> None:
    files = write_agent_files(tmp_path / "agent", port=free_port())
    agent = Agent.build(load_config(files.config), pin_factory=mock_factory,
                        notifier=Notifier(notify.path, watchdog_usec=200_000))  # ping every 0.1 s
    runner = threading.Thread(target=agent.run, daemon=True)
    runner.start()
    frozen, release = threading.Event(), threading.Event()
    try:
        notify.expect("READY=1")
        wait_until(lambda: notify.drain().count("WATCHDOG=1") > 0, timeout=5, what="pings")

        def freeze() -> None:               # the loop's thread blocks here
            frozen.set()
            release.wait(10)

        agent.loop.submit_call(freeze)
        assert frozen.wait(5)
        notify.drain()                      # pings sent before the freeze
        time.sleep(0.6)                     # six ping intervals with the loop frozen
        assert notify.drain().count("WATCHDOG=1") == 0
        release.set()
        wait_until(lambda: notify.drain().count("WATCHDOG=1") > 0, timeout=5, what="pings again")
    finally:
        release.set()
        agent.loop.request_stop()
        runner.join(10)
        agent.close(flush_timeout_s=0)


@pytest.mark.slow
def test_sighup_keeps_the_old_config_when_the_new_one_is_broken(tmp_path: Path,
                                                               notify: NotifySocket) -> None:
    files = write_agent_files(tmp_path / "agent", port=free_port())
    stderr = tmp_path / "stderr.txt"
    proc = start_run(files, notify, stderr)
    try:
        notify.expect("READY=1")
        good = files.config.read_text()
        files.config.write_text(good.replace("heartbeat_s: 300", "heartbeat_s: soon"))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "config reload refused" in stderr.read_text(), timeout=10,
                   what="the refusal")
        assert "heartbeat_s" in stderr.read_text()       # the problem is named
        assert proc.poll() is None                        # still running, old config
        notify.messages.clear()
        files.config.write_text(good.replace("heartbeat_s: 300", "heartbeat_s: 120"))
        proc.send_signal(signal.SIGHUP)
        notify.expect("READY=1")                          # rebuilt with the new config
        wait_until(lambda: "config reloaded" in stderr.read_text(), timeout=10, what="reload")
        # a reload is not a stop: STOPPING=1 would tell systemd the service is going away
        assert "STOPPING=1" not in notify.messages + notify.drain(), notify.messages
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


TIMELINE = """
- {at: 0.0, sensor: front_door, level: inactive}
- {at: 1.0, sensor: sos, level: active}
- {at: 1.001, sensor: sos, level: inactive}
- {at: 1.002, sensor: sos, level: active}
- {at: 2.5, sensor: sos, level: inactive}
- {at: 3.0, sensor: front_door, level: active}
- {at: 3.08, sensor: front_door, level: inactive}
- {at: 4.0, sensor: front_door, level: active}
- {at: 6.0, sensor: front_door, level: inactive}
"""


@pytest.mark.broker
def test_simulate_delivers_exactly_the_debounced_events(tmp_path: Path,
                                                        broker: MosquittoBroker) -> None:
    files = files_for_broker(tmp_path / "agent", broker)
    with Subscriber(broker, f"{broker.prefix}/events/#") as sub:
        result = run_simulate(files, TIMELINE, speed=4)
        assert result.returncode == 0, result.stderr
        assert "0 still buffered" in result.stdout
        sub.wait_for(8, timeout=5)
        public = files.device_key.public_key()
        verifier = Verifier("EdDSA", public, kid=ed25519_thumbprint(public))
        claims = [verifier.verify(m.payload.decode()) for m in sub.messages]
    got = sorted((c["seq"], c["type"], c["sensor"]) for c in claims)
    assert [(t, s) for _, t, s in got] == [
        ("agent.started", "agent"),
        ("sos.released", "sos"), ("smoke.cleared", "kitchen_smoke"), ("door.closed", "front_door"),
        ("sos.pressed", "sos"),            # the 1 ms bounce is debounced away
        ("sos.released", "sos"),           # the door's 80 ms rattle makes no event
        ("door.opened", "front_door"), ("door.closed", "front_door")]
    by_type = {(c["type"], c["data"].get("initial", False)): c for c in claims}
    assert by_type[("sos.released", False)]["data"]["held_ms"] == 2530 - 1032   # press settled at 1.032


def _ms(ts: str) -> int:
    import datetime
    return int(datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
               .replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


@pytest.mark.broker
def test_simulated_ts_follow_the_timeline(tmp_path: Path, broker: MosquittoBroker) -> None:
    files = files_for_broker(tmp_path / "agent", broker)
    with Subscriber(broker, f"{broker.prefix}/events/sos") as sub:
        result = run_simulate(files, TIMELINE, speed=5)
        assert result.returncode == 0, result.stderr
        msgs = sub.wait_for(3)
    import jwt
    ts = [jwt.decode(m.payload, options={"verify_signature": False})["ts"] for m in msgs]
    initial, pressed, released = (_ms(t) for t in ts)
    assert pressed - initial == 1032 - 30        # windows complete at timeline time (last bounce 1.002 + 30 ms)
    assert released - pressed == 2530 - 1032


def test_simulate_exits_3_when_the_broker_never_answers(tmp_path: Path) -> None:
    files = write_agent_files(tmp_path / "agent", port=free_port())
    (tmp_path / "timeline.yaml").write_text("- {at: 0.5, sensor: sos, level: active}\n")
    result = run_cli("simulate", "--config", str(files.config), "--timeline",
                     str(tmp_path / "timeline.yaml"), "--speed", "10", "--timeout", "2")
    assert result.returncode == 3, result.stderr
    assert "still buffered" in result.stdout


def test_simulate_names_a_bad_timeline_line(tmp_path: Path) -> None:
    files = write_agent_files(tmp_path / "agent", port=free_port())
    (tmp_path / "t.yaml").write_text("- {at: 0, sensor: sos, level: active}\n"
                                     "- {at: 1, sensor: garage, level: active}\n")
    result = run_cli("simulate", "--config", str(files.config), "--timeline", str(tmp_path / "t.yaml"))
    assert result.returncode == 2
    assert "t.yaml:2" in result.stderr and "garage" in result.stderr


class AnonymousMosquitto:
    """A plain broker that lets anyone in, as a developer's local mosquitto does."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        import pwd
        conf = folder / "anon.conf"
        conf.write_text(f"user {pwd.getpwuid(os.getuid()).pw_name}\npersistence false\n"
                        f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def accepts() -> bool:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                return False
        wait_until(accepts, timeout=10, what="anonymous mosquitto")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.mark.slow
@pytest.mark.parametrize("with_broker", [True, False])
def test_demo_finishes_within_a_minute_and_exits_0(tmp_path: Path, with_broker: bool) -> None:
    anon: Optional[AnonymousMosquitto] = AnonymousMosquitto(tmp_path) if with_broker else None
    try:
        target = f"127.0.0.1:{anon.port if anon else free_port()}"
        t0 = time.monotonic()
        result = run_cli("demo", "--broker", target, timeout=60)
        took = time.monotonic() - t0
    finally:
        if anon is not None:
            anon.close()
    assert result.returncode == 0, result.stderr
    assert took < 60
    out = result.stdout
    assert "sos.pressed" in out and "smoke.alarm" in out and "door.opened" in out
    if with_broker:
        assert "0 still buffered" in out and "acknowledged the alarms" in out
        assert "steady" in out
    else:
        assert "0 delivered" in out and "no broker" in out


def test_heartbeat_data_counts_what_waits_in_the_outbox(tmp_path: Path, mock_factory: object) -> None:
    files = write_agent_files(tmp_path / "agent", port=free_port())
    agent = Agent.build(load_config(files.config), pin_factory=mock_factory, notifier=Notifier(None))
    try:
        agent.loop.start()                       # agent.started, stored (nobody to send it to)
        summary = agent.status.summary()
        assert summary["outbox_depth"] >= 1 and summary["connected"] is False
        assert summary["signature_failures"] == 0
    finally:
        agent.close(flush_timeout_s=0)


def test_a_missing_command_key_disables_commands_not_the_gateway(tmp_path: Path,
                                                                 mock_factory: object) -> None:
    files = write_agent_files(tmp_path / "agent", port=free_port())
    (files.folder / "cloud-public.pem").unlink()
    agent = Agent.build(load_config(files.config), pin_factory=mock_factory, notifier=Notifier(None))
    try:
        assert agent.commands is None and agent.publisher.settings.subscribe_commands is False
        agent.loop.start()
        import jwt
        started = [r for r in agent.outbox.next_batch(10) if r.type == "agent.started"][0]
        data = jwt.decode(started.payload, options={"verify_signature": False})["data"]
        assert data["commands"].startswith("disabled: ")
        assert "cloud-public.pem" in data["commands"]
    finally:
        agent.close(flush_timeout_s=0)


def test_a_secret_others_can_read_still_stops_the_start(tmp_path: Path) -> None:
    files = write_agent_files(tmp_path / "agent", port=free_port())
    (files.folder / "device-key.pem").chmod(0o644)
    result = run_cli("run", "--config", str(files.config), timeout=30)
    assert result.returncode == 1
    assert "chmod 600" in result.stderr

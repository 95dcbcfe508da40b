"""Storage failure is a degraded mode, never an exit (docs/spec.md §6 and §9).

Real storage that fails as in the field: a loop-mounted ext4 image with
``errors=remount-ro`` made to fail through the kernel's ``trigger_fs_error`` (a worn SD
card: the file system turns read-only under the running agent), and a small tmpfs
filled up (a full disk); the real test mosquitto as the broker; the in-process agent
on mock pins, and the real ``homecare-agent run`` / ``simulate`` processes for starts
and stops. A machine that cannot mount skips these tests and says why.
"""
from __future__ import annotations

import signal
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Tuple

import pytest

from agent.record.counters import DEGRADED_BOOT_MIN
from agent.record.signing import Verifier, ed25519_thumbprint
from tests.agent_files import AgentFiles, files_for_broker, run_simulate
from tests.broker import MosquittoBroker, Subscriber
from tests.helpers import assert_unique_boot_seq, cli_command, cli_env
from tests.integration.agent_harness import SOS_PIN, AgentHarness
from tests.storage_mounts import Ext4Card, SmallTmpfs

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def small_fs_kb() -> int:
    """small_fs (tests/conftest.py) at 4 MiB here."""
    return 4096


def _press(h: AgentHarness, after: int, limit_s: float) -> Dict[str, Any]:
    """Press and release SOS; the sos.pressed must reach the broker within ``limit_s``."""
    start = time.monotonic()
    h.pin(SOS_PIN).drive_low()
    pressed = h.wait_event(type="sos.pressed", after=after, timeout=limit_s + 3)
    took = time.monotonic() - start
    assert took <= limit_s, f"sos.pressed took {took:.2f} s to reach the broker"
    h.pin(SOS_PIN).drive_high()
    index = next(i for i, e in enumerate(h.events()) if e["jti"] == pressed["jti"])
    h.wait_event(type="sos.released", after=index + 1)
    return pressed


def _after_failure(events: List[Dict[str, Any]], failed_at: int) -> List[Dict[str, Any]]:
    later = events[failed_at:]
    kinds = [e["type"] for e in later]
    assert "buffer.storage_failed" in kinds
    first_alarm = kinds.index("sos.pressed")
    assert kinds.index("buffer.storage_failed") < first_alarm   # it goes out first
    return [e for e in later if e["type"] == "sos.pressed"]


def test_a_card_gone_read_only_with_the_broker_up_sends_every_sos_within_2_s(
        broker: MosquittoBroker, tmp_path: Path, card: Ext4Card, mock_factory: Any) -> None:
    overrides = {"state_dir": str(card.path / "state"), "buffer": {"min_free_mb": 0}}
    with AgentHarness(broker, tmp_path / "agent", mock_factory, overrides=overrides) as h:
        h.wait_event(type="sos.released", initial=True)
        before = _press(h, 0, 2.0)
        assert "stored" not in before["data"]
        failed_at = len(h.events())
        card.fail()
        pressed = [_press(h, len(h.events()), 2.0) for _ in range(7)]
        assert all(p["data"]["stored"] is False for p in pressed)
        assert len(_after_failure(h.events(), failed_at)) == 7
        assert h.agent is not None and h.agent.recorder.storage_failed is not None
        assert h.agent.feedback.snapshot()["storage_failed"] is True
        events = h.events()
    assert_unique_boot_seq(events)


def test_a_full_disk_with_the_broker_up_sends_at_once_signs_once_and_resumes(
        broker: MosquittoBroker, tmp_path: Path, small_fs: SmallTmpfs, mock_factory: Any) -> None:
    overrides = {"state_dir": str(small_fs.path / "state"), "buffer": {"min_free_mb": 0}}
    with AgentHarness(broker, tmp_path / "agent", mock_factory, overrides=overrides) as h:
        h.wait_event(type="sos.released", initial=True)
        failed_at = len(h.events())
        filler = small_fs.fill()
        pressed = [_press(h, len(h.events()), 2.0) for _ in range(3)]
        assert all(p["data"]["stored"] is False for p in pressed)
        assert len(_after_failure(h.events(), failed_at)) == 3
        # signed once: between two presses only their own releases took a seq
        seqs = [p["seq"] for p in pressed]
        assert [b - a for a, b in zip(seqs, seqs[1:])] == [2, 2]
        filler.unlink()
        h.wait_event(type="buffer.storage_restored", timeout=12.0)
        again = _press(h, len(h.events()), 2.0)
        assert "stored" not in again["data"]
        events = h.events()
    assert_unique_boot_seq(events)


# --- the real processes: start and stop on a failed card ------------------------------------

def _files(broker: MosquittoBroker, tmp_path: Path, state: Path) -> Tuple[AgentFiles, Verifier]:
    """The agent's files (state in ``state``) and a verifier of what it signs."""
    files = files_for_broker(tmp_path / "agent", broker, commands=False,
                             extra={"state_dir": str(state), "heartbeat_s": 3600,
                                    "buffer": {"min_free_mb": 0}})
    public = files.device_key.public_key()
    return files, Verifier("EdDSA", public, kid=ed25519_thumbprint(public))


def _events(sub: Subscriber, verifier: Verifier) -> List[Dict[str, Any]]:
    with sub._cond:
        received = list(sub.messages)
    return [verifier.verify(m.payload.decode("ascii")) for m in received if "/events/" in m.topic]


def _wait_types(sub: Subscriber, verifier: Verifier, *types: str, after: int = 0,
                timeout: float = 20.0) -> List[Dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        events = _events(sub, verifier)
        if all(t in [e["type"] for e in events[after:]] for t in types):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"no {types} within {timeout} s; got "
                                 f"{[e['type'] for e in events[after:]]}")
        with sub._cond:
            sub._cond.wait(0.2)


def _run(files: AgentFiles, stderr: Path) -> "subprocess.Popen[str]":
    return subprocess.Popen(cli_command("run", "--config", str(files.config)), env=cli_env(),
                            text=True, stdout=subprocess.DEVNULL, stderr=open(stderr, "w"))


def _sigterm(proc: "subprocess.Popen[str]") -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(20)


@contextmanager
def _running(files: AgentFiles, log: Path) -> Iterator["subprocess.Popen[str]"]:
    """``homecare-agent run`` logging to ``log``; killed on the way out if still running."""
    proc = _run(files, log)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()


def _break_storage_and_stop(files: AgentFiles, sub: Subscriber, verifier: Verifier, log: Path,
                            break_storage: Callable[[], object]) -> None:
    """Start the agent, let it send, break its storage, SIGTERM: it must exit 0 without a traceback."""
    with _running(files, log) as proc:
        _wait_types(sub, verifier, "agent.started", "sos.released")
        break_storage()
        assert _sigterm(proc) == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_run_stops_with_0_on_a_failed_card_and_restarts_degraded_instead_of_crash_looping(
        broker: MosquittoBroker, tmp_path: Path, card: Ext4Card) -> None:
    files, verifier = _files(broker, tmp_path, card.path / "state")
    with Subscriber(broker, "homecare/gw-test/#") as sub:
        # SIGTERM on a read-only card
        _break_storage_and_stop(files, sub, verifier, tmp_path / "run-1.log", card.fail)
        boots = []
        for run in (2, 3):                       # systemd restarting it on the same card
            log = tmp_path / f"run-{run}.log"
            seen = len(_events(sub, verifier))
            with _running(files, log) as proc:
                events = _wait_types(sub, verifier, "agent.started", "buffer.storage_failed",
                                     "sos.released", after=seen)
                assert proc.poll() is None, log.read_text()[-3000:]
                assert _sigterm(proc) == 0, log.read_text()[-3000:]
            text = log.read_text()
            assert "Traceback" not in text, text[-3000:]
            started = next(e for e in events[seen:] if e["type"] == "agent.started")
            assert started["boot"] >= DEGRADED_BOOT_MIN and "not saved" in started["data"]["counters"]
            assert started["data"]["stored"] is False
            boots.append(started["boot"])
        assert len(set(boots)) == 2
        assert_unique_boot_seq(_events(sub, verifier))


def test_simulate_on_a_read_only_card_delivers_every_press_from_memory(
        broker: MosquittoBroker, tmp_path: Path, card: Ext4Card) -> None:
    files, verifier = _files(broker, tmp_path, card.path / "state")
    card.fail()
    timeline = "".join(f"- {{at: {t + 0.5}, sensor: sos, level: active}}\n"
                       f"- {{at: {t + 1.0}, sensor: sos, level: inactive}}\n" for t in range(5))
    with Subscriber(broker, "homecare/gw-test/#") as sub:
        done = run_simulate(files, timeline, speed=5.0)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        events = _wait_types(sub, verifier, "buffer.storage_failed", "sos.pressed")
    pressed = [e for e in events if e["type"] == "sos.pressed"]
    assert len(pressed) == 5 and all(e["data"]["stored"] is False for e in pressed)
    assert_unique_boot_seq(events)


def test_run_stops_with_0_on_a_full_disk_after_sending_what_it_could(
        broker: MosquittoBroker, tmp_path: Path, small_fs: SmallTmpfs) -> None:
    files, verifier = _files(broker, tmp_path, small_fs.path / "state")
    with Subscriber(broker, "homecare/gw-test/#") as sub:
        _break_storage_and_stop(files, sub, verifier, tmp_path / "run.log", small_fs.fill)
        assert_unique_boot_seq(_events(sub, verifier))


def test_stopping_on_a_read_only_card_with_command_bookkeeping_due_does_not_raise(
        broker: MosquittoBroker, tmp_path: Path, card: Ext4Card, mock_factory: Any) -> None:
    from agent.app.daemon import Agent
    from agent.app.sdnotify import Notifier

    offset = [0.0]
    overrides = {"state_dir": str(card.path / "state"), "buffer": {"min_free_mb": 0}}
    h = AgentHarness(broker, tmp_path / "agent", mock_factory, overrides=overrides,
                     build=lambda c: Agent.build(c, pin_factory=mock_factory,
                                                 notifier=Notifier(None),
                                                 wall=lambda: time.time() + offset[0]))
    with h:
        h.wait_event(type="sos.released", initial=True)
        assert h.send_and_answer(h.sign("ping"))["type"] == "command.done"
        offset[0] = 3 * 86400.0          # the seen command is now due to be forgotten
        assert h.agent is not None and h.agent.commands is not None
        h.agent.loop.request_stop()              # the loop ends as on SIGTERM ...
        assert h._thread is not None
        h._thread.join(10)
        h.agent.commands._next_expire = None     # ... with the hourly clean-up due at close
        card.fail()
    # leaving the block closed the agent (Agent.close): no exception on the read-only card

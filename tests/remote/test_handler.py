"""The command shell (agent.remote.handler): effects, answers, replay record, rate limit, fuzz."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.remote.handler import CommandHandler
from agent.remote.keys import load_command_verifier
from agent.remote.limiter import RejectionLimiter
from agent.remote.policy import REASONS, CommandPolicy
from agent.remote.seen import CommandStore

DEVICE = "gw-0001"
WALL = 1_764_339_471.0
CLOUD_KEY = Ed25519PrivateKey.generate()
TYP = "homecare-command+jwt"


class RecordingActions:
    """Stands in for the agent's outputs; notes whether the replay file existed at each act."""

    def __init__(self, store_path: Path) -> None:
        self.store_path = store_path
        self.acts: List[Any] = []
        #: what an ack closes (agent.app.actions gives the book's Acknowledged as dicts)
        self.closes: List[Dict[str, Any]] = []

    def saved(self) -> List[str]:
        if not self.store_path.exists():
            return []
        return [r["jti"] for r in json.loads(self.store_path.read_text(encoding="utf-8"))["seen"]]

    def ack(self, in_reply_to: Optional[str]) -> List[Dict[str, Any]]:
        self.acts.append(("ack", in_reply_to, self.saved()))
        return list(self.closes)

    def locate(self) -> None:
        self.acts.append(("locate", self.saved()))

    def maintenance(self, args: Any, now: float) -> List[Any]:
        self.acts.append(("maintenance", dict(args), self.saved()))
        return []

    def status(self) -> Dict[str, Any]:
        return {"link": {"connected": True}}


def token(cmd: str = "ping", **over: Any) -> bytes:
    claims: Dict[str, Any] = {"aud": DEVICE, "jti": "c-1", "iat": int(WALL) - 5,
                              "exp": int(WALL) + 295, "cmd": cmd}
    claims.update(over)
    return jwt.encode(claims, CLOUD_KEY, algorithm="EdDSA", headers={"typ": TYP}).encode()


def make_handler(folder: Path, limit: int = 30,
                 wall: Callable[[], float] = lambda: WALL) -> CommandHandler:
    key_file = folder / "cloud-public.pem"
    key_file.write_bytes(CLOUD_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    store = CommandStore(folder / "state")
    (folder / "state").mkdir(exist_ok=True)
    policy = CommandPolicy(device_id=DEVICE, algorithm="EdDSA",
                           verify_signature=load_command_verifier("EdDSA", key_file),
                           seen=store.load())
    return CommandHandler(policy, store, RecordingActions(store.path), wall=wall,
                          limiter=RejectionLimiter(limit=limit, window_s=60.0))


@pytest.fixture
def handler(tmp_path: Path) -> CommandHandler:
    return make_handler(tmp_path)


def test_ping_answers_with_status(handler: CommandHandler) -> None:
    [event] = handler.handle(token("ping", jti="p1"), 10.0)
    assert (event.type, event.at, event.sensor, event.critical) == ("command.done", 10.0, "agent", False)
    assert event.data == {"command_jti": "p1", "cmd": "ping", "status": {"link": {"connected": True}}}


def test_ack_is_recorded_on_disk_before_it_takes_effect(handler: CommandHandler) -> None:
    [event] = handler.handle(token("ack", jti="a1", in_reply_to="ev-9"), 1.0)
    assert handler.actions.acts == [("ack", "ev-9", ["a1"])]  # type: ignore[attr-defined]
    assert event.data == {"command_jti": "a1", "cmd": "ack", "in_reply_to": "ev-9",
                          "acknowledged": []}


def test_an_ack_for_all_lists_each_alarm_it_closed(handler: CommandHandler) -> None:
    closed = [{"jti": "s1", "type": "sos.pressed", "latency_ms": 1500},
              {"jti": "k1", "type": "smoke.alarm", "latency_ms": 20}]
    handler.actions.closes = closed  # type: ignore[attr-defined]
    [event] = handler.handle(token("ack", jti="a2"), 1.0)
    assert event.data == {"command_jti": "a2", "cmd": "ack", "acknowledged": closed}


def test_locate_beeps(handler: CommandHandler) -> None:
    [event] = handler.handle(token("locate", jti="l1"), 1.0)
    assert event.type == "command.done" and handler.actions.acts == [("locate", ["l1"])]  # type: ignore[attr-defined]


def test_replay_survives_a_restart(tmp_path: Path) -> None:
    first = make_handler(tmp_path)
    assert first.handle(token("locate", jti="once"), 1.0)[0].type == "command.done"
    second = make_handler(tmp_path)                       # the agent restarted
    [event] = second.handle(token("locate", jti="once"), 2.0)
    assert event.type == "command.rejected" and event.data["reason"] == "replayed"
    assert second.actions.acts == []  # type: ignore[attr-defined]


DAY = 86400.0


class WallClock:
    """The agent's injected wall clock, set by the test (no real clock is touched)."""

    def __init__(self) -> None:
        self.now = WALL

    def __call__(self) -> float:
        return self.now


def reason(events: List[Any]) -> Optional[str]:
    [event] = events
    return None if event.type == "command.done" else str(event.data["reason"])


def test_no_replay_when_the_clock_steps_back_30_days_after_two(tmp_path: Path) -> None:
    wall = WallClock()
    command = token("locate", jti="once")
    assert reason(make_handler(tmp_path, wall=wall).handle(command, 1.0)) is None
    wall.now = WALL + 2 * DAY          # two days on: the periodic clean-up runs, then a power cut
    make_handler(tmp_path, wall=wall).advance(2.0)
    wall.now = WALL - 30 * DAY         # no RTC: the Pi starts a month behind
    again = make_handler(tmp_path, wall=wall)
    assert reason(again.handle(command, 3.0)) == "replayed"


def test_no_replay_after_one_start_with_the_clock_at_2099(tmp_path: Path) -> None:
    wall = WallClock()
    command = token("locate", jti="once")
    assert reason(make_handler(tmp_path, wall=wall).handle(command, 1.0)) is None
    wall.now = 4_080_000_000.0         # 2099: one start with a wrong clock
    make_handler(tmp_path, wall=wall).advance(2.0)
    wall.now = WALL + 10               # the clock is put right; the command is replayed
    again = make_handler(tmp_path, wall=wall)
    assert reason(again.handle(command, 3.0)) == "replayed"
    # and commands are not left unusable: a new one is obeyed
    assert reason(again.handle(token("ping", jti="new", iat=int(WALL) + 5,
                                     exp=int(WALL) + 305), 4.0)) is None


def test_rejections_do_nothing_and_are_counted(handler: CommandHandler) -> None:
    for payload in (b"nonsense", token("locate", aud="gw-other"), token("reboot", jti="r")):
        [event] = handler.handle(payload, 1.0)
        assert event.type == "command.rejected"
    assert handler.actions.acts == []  # type: ignore[attr-defined]
    assert handler.rejections == {"malformed": 1, "wrong_aud": 1, "unknown_command": 1}
    assert handler.policy_failures() == 0
    assert handler.handle(token(), 1.0)[0].type == "command.done"
    handler.handle(b"a.b.c", 1.0)
    wrong_key = jwt.encode({"cmd": "ping"}, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                           headers={"typ": TYP}).encode()
    handler.handle(wrong_key, 1.0)
    assert handler.policy_failures() == 1


def test_flood_of_rejections_is_limited_then_summarised(tmp_path: Path) -> None:
    handler = make_handler(tmp_path, limit=3)
    sent = [e for i in range(10) for e in handler.handle(b"junk %d" % i, 1.0 + i)]
    assert len(sent) == 3
    deadline = handler.next_deadline()
    assert deadline is not None and deadline <= 4.0 + 60.0
    assert handler.advance(30.0) == []
    [summary] = handler.advance(4.0 + 60.0)
    assert summary.type == "command.rejected"
    assert summary.data == {"suppressed": 7, "reasons": {"malformed": 7}}


def test_pending_summary_is_sent_at_shutdown(tmp_path: Path) -> None:
    handler = make_handler(tmp_path, limit=1)
    handler.handle(b"x", 1.0)
    handler.handle(b"y", 1.0)
    [summary] = handler.advance(2.0, final=True)
    assert summary.data["suppressed"] == 1


def test_a_bug_in_the_policy_is_a_malformed_rejection_not_a_crash(handler: CommandHandler,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(payload: bytes, now: float) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(handler.policy, "check", boom)
    [event] = handler.handle(token(), 1.0)
    assert event.data == {"reason": "malformed"}


def _check_answers(events: Any) -> None:
    assert len(events) <= 1
    for event in events:
        assert event.type in ("command.done", "command.rejected") and event.sensor == "agent"
        if event.type == "command.rejected":
            assert event.data["reason"] in REASONS
        json.dumps(dict(event.data))   # answers must be JSON-ready for signing


FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(data=st.binary(max_size=5000))
def test_fuzz_random_bytes_never_raise(handler: CommandHandler, data: bytes) -> None:
    _check_answers(handler.handle(data, 1.0))
    assert handler.actions.acts == []  # type: ignore[attr-defined]


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


@FUZZ
@given(claims=st.dictionaries(st.sampled_from(["aud", "jti", "iat", "exp", "cmd", "args",
                                               "in_reply_to", "x"]), _json, max_size=8),
       cmd=st.sampled_from(["ack", "ping", "locate", "reboot", None]))
def test_fuzz_validly_signed_random_claims_never_raise(handler: CommandHandler,
                                                       claims: Dict[str, Any],
                                                       cmd: Optional[str]) -> None:
    if cmd is not None:
        claims = {"aud": DEVICE, "jti": "j", "iat": int(WALL), "exp": int(WALL) + 60,
                  "cmd": cmd, **{k: v for k, v in claims.items() if k in ("args", "in_reply_to", "x")}}
    payload = jwt.encode(claims, CLOUD_KEY, algorithm="EdDSA", headers={"typ": TYP}).encode()
    _check_answers(handler.handle(payload, 1.0))


def test_maintenance_is_carried_out_after_the_replay_record(handler: CommandHandler) -> None:
    [done] = handler.handle(token("maintenance", jti="m1", args={"minutes": 30}), 10.0)
    assert (done.type, done.data["cmd"]) == ("command.done", "maintenance")
    assert handler.actions.acts == [("maintenance", {"minutes": 30}, ["m1"])]  # type: ignore[attr-defined]


@pytest.mark.parametrize("args", [{"minutes": 241}, {"minutes": -1}, {"minutes": 1.5},
                                  {"minutes": True}, {}, {"minutes": 5, "extra": 1}])
def test_maintenance_bad_args_is_rejected_and_its_jti_seen(handler: CommandHandler,
                                                           args: Dict[str, Any]) -> None:
    [rejected] = handler.handle(token("maintenance", jti="m2", args=args), 10.0)
    assert rejected.type == "command.rejected"
    assert rejected.data == {"reason": "bad_args", "command_jti": "m2", "cmd": "maintenance"}
    assert handler.actions.acts == []  # type: ignore[attr-defined]
    [again] = handler.handle(token("maintenance", jti="m2", args={"minutes": 5}), 11.0)
    assert again.data["reason"] == "replayed"


def test_unknown_command_is_decided_before_bad_args(handler: CommandHandler) -> None:
    [rejected] = handler.handle(token("maintenancex", jti="m3", args={"minutes": 999}), 10.0)
    assert rejected.data["reason"] == "unknown_command"
